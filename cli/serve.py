"""`diva serve`, and client verbs against a running service: `diva embed`, `diva classify`,
`diva models list|show|pull|architectures`.

Client verbs read ``--url`` / ``DIVA_URL`` and ``--api-key`` / ``DIVA_API_KEY``; heavy imports
happen inside the commands so ``diva --help`` stays instant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

models_app = typer.Typer(help="The model registry: list, inspect, pull models in.", no_args_is_help=True)
URL = typer.Option(os.environ.get("DIVA_URL", "http://127.0.0.1:8000"), "--url", help="Service URL.")
KEY = typer.Option(None, "--api-key", envvar="DIVA_API_KEY", help="Bearer key.")
MODEL = typer.Option(None, "--model", "-m", help="Model id (default: the server's default model).")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command()(serve)
    app.command()(embed)
    app.command()(classify)
    app.add_typer(models_app, name="models")


def _call(fn, *args, **kwargs):
    from service.client import DivaApiError

    try:
        return fn(*args, **kwargs)
    except DivaApiError as exc:
        typer.secho(f"error {exc.status} ({exc.type}): {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


def serve(
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, help="Server processes (each loads its own models)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the API (embeddings, classify, models; job routes submit to the broker)."""
    import uvicorn

    uvicorn.run(
        "service.main:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level
    )


def embed(
    texts: list[str] = typer.Argument(None, help="Texts to embed."),
    image: list[Path] = typer.Option([], "--image", "-i", help="Image file (repeatable)."),
    model: Optional[str] = MODEL,
    raw: bool = typer.Option(False, "--raw", help="Do not L2-normalise."),
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Print one JSON line per input: {"input", "embedding"} (texts first, then images)."""
    from service.client import DivaClient

    texts = texts or []
    if not texts and not image:
        raise typer.BadParameter("give at least one text or --image")
    inputs = [*texts, *({"image": _b64(p)} for p in image)]
    with DivaClient(url, api_key) as client:
        vectors = _call(client.embed, inputs, model, not raw)
    for name, vector in zip([*texts, *map(str, image)], vectors):
        typer.echo(json.dumps({"input": name, "embedding": [round(float(v), 7) for v in vector]}))


def classify(
    images: list[Path] = typer.Argument(..., help="Image files."),
    label: list[str] = typer.Option([], "--label", "-l", help="Candidate label (repeatable)."),
    template: list[str] = typer.Option([], "--template", "-t", help="Prompt template with '{}'."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Labels shown per image."),
    model: Optional[str] = MODEL,
    head: Optional[str] = typer.Option(None, "--head", help="A few-shot head id (diva heads fit)."),
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Zero-shot labels for each image, best first (or a few-shot head's, with --head)."""
    from service.client import DivaClient

    if not label and head is None:
        raise typer.BadParameter("give --label (zero-shot) or --head")
    with DivaClient(url, api_key) as client:
        ranked = _call(client.classify, list(images), label or None, template or None, top_k, model, head)
    for path, labels in zip(images, ranked):
        typer.echo(f"{path}: " + ", ".join(f"{name} {score:.3f}" for name, score in labels))


@models_app.command("list")
def models_list(
    url: str = URL, api_key: Optional[str] = KEY, as_json: bool = typer.Option(False, "--json")
) -> None:
    """Models the service can serve."""
    from service.client import DivaClient

    with DivaClient(url, api_key) as client:
        models = _call(client.models)
    if as_json:
        typer.echo(json.dumps(models, indent=2))
        return
    for card in models:
        loaded = ",".join(card.get("loaded_runtimes") or []) or "-"
        typer.echo(
            f"{card['id']:<32} {card.get('architecture') or '':<20} dim={card.get('embed_dim')} "
            f"size={card.get('image_size')} loaded={loaded}"
        )


@models_app.command("show")
def models_show(model_id: str, url: str = URL, api_key: Optional[str] = KEY) -> None:
    """One model's card: base, recipe, dims, eval results, lineage."""
    from service.client import DivaClient

    with DivaClient(url, api_key) as client:
        typer.echo(json.dumps(_call(client.model, model_id), indent=2))


@models_app.command("pull")
def models_pull(
    source: str = typer.Argument(
        ..., help="open_clip name (with --pretrained), 'hf-hub:org/repo' or an open_clip folder."
    ),
    model_id: str = typer.Option(..., "--id", help="Registry id to write."),
    pretrained: Optional[str] = typer.Option(
        None, help="open_clip tag (from the local cache) or weights file."
    ),
    description: str = typer.Option("", help="Free text for the model card."),
) -> None:
    """Copy a model into the registry ($DIVA_HOME/models/<id>): served at once, exportable."""
    from state.settings import get_settings
    from trainer.artifacts import InvalidModelId, ModelArtifact
    from trainer.backbones.factory import UnknownBackboneError, create_clip, write_model_folder

    settings = get_settings()
    try:
        artifact = ModelArtifact.in_registry(settings.models_dir, model_id)
        bundle = create_clip(source, pretrained)
    except (InvalidModelId, UnknownBackboneError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if artifact.exists():
        raise typer.BadParameter(f"model {model_id!r} already exists in {settings.models_dir}")
    write_model_folder(
        bundle,
        settings.models_dir,
        model_id,
        base=bundle.source,
        recipe=None,
        patch_size=bundle.model_cfg.get("vision_cfg", {}).get("patch_size"),
        interpolation=str(bundle.preprocess_cfg["interpolation"]),
        resize_mode=str(bundle.preprocess_cfg["resize_mode"]),
        description=description or f"pulled from {bundle.source}",
    )
    typer.echo(f"wrote {artifact.root}")


@models_app.command("architectures")
def models_architectures() -> None:
    """Every architecture name open_clip can build here (the project's own configs included)."""
    from trainer.backbones.factory import list_architectures

    for name in list_architectures():
        typer.echo(name)


def _b64(path: Path) -> str:
    import base64

    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read image {path}: {exc}") from None
