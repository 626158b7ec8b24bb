"""``diva export MODEL --format hf|open_clip|onnx|triton --out DIR``.

MODEL is a registry id (built-in folder or ``$DIVA_HOME/models``), a folder, ``architecture:tag``
or anything ``create_clip`` accepts. Heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Attach ``diva export`` to the root app."""
    app.command(name="export")(export)


def export(
    model: str = typer.Argument(..., help="Model id, folder, 'architecture:tag' or open_clip name."),
    format: str = typer.Option(..., "--format", "-f", help="hf, open_clip, onnx or triton."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (created if missing)."),
    fp16: bool = typer.Option(False, help="onnx/triton: fp16 weights (inputs and outputs stay float32)."),
    vision_only: bool = typer.Option(False, help="hf: a CLIPVisionModel folder (what LLaVA loads)."),
    opset: int = typer.Option(18, help="onnx/triton: ONNX opset."),
    name: Optional[str] = typer.Option(None, help="triton: model name prefix (default: the model id)."),
    max_batch_size: int = typer.Option(64, help="triton: largest batch the server forms."),
    instances: int = typer.Option(1, help="triton: model instances per device."),
    instance_kind: str = typer.Option("gpu", help="triton: where instances run, 'gpu' or 'cpu'."),
    tensorrt: bool = typer.Option(
        False, help="triton: enable the TensorRT accelerator (onnxruntime backend)."
    ),
    install_into: Optional[Path] = typer.Option(
        None, help="triton: also put the onnxruntime models into this shared repository (Triton polls it)."
    ),
    verify: bool = typer.Option(
        True, help="onnx/triton: check ONNX Runtime against PyTorch (batch 1, 7, 32)."
    ),
) -> None:
    """Export a model's towers for MLLM teams (hf), open_clip users, ONNX Runtime or Triton."""
    from trainer.export import check_format

    try:
        check_format(format)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    options: dict[str, object] = {}
    if format in ("onnx", "triton"):
        options.update(fp16=fp16, opset=opset)
    if format == "hf":
        options["vision_only"] = vision_only
    if format == "triton":
        options.update(
            name=name,
            max_batch_size=max_batch_size,
            instances=instances,
            kind=instance_kind,
            tensorrt=tensorrt,
        )
    try:
        written, bundle = _run(model, format, out, options)
    except (FileNotFoundError, ValueError, ImportError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {format} export of {model} to {written}")
    heads = _export_heads(model, out)
    if heads:
        typer.echo(f"wrote {len(heads)} few-shot head(s) to {out / 'heads'}")
    if format == "triton" and install_into is not None:
        from trainer.export.triton import install_into_repository

        names = install_into_repository(written, install_into)
        typer.echo(f"installed {', '.join(names)} into {install_into}")
    if verify and format in ("onnx", "triton"):
        _verify(bundle, written, format, fp16)


def _run(model: str, fmt: str, out: Path, options: dict[str, object]) -> tuple[Path, object]:
    from state.catalog import model_roots
    from state.settings import get_settings
    from trainer.artifacts import ModelArtifact
    from trainer.eval.models import load_model, resolve_model
    from trainer.export import export_model, load_bundle

    roots = model_roots(get_settings())
    source, pretrained = resolve_model(model, roots)
    artifact = ModelArtifact(source)
    if pretrained is None and artifact.exists():
        bundle = load_bundle(artifact)
        target: object = artifact
    else:
        bundle = target = load_model(model, roots)
    # the artefact's own folder keeps tokenizer files and names the Triton models by id
    written = export_model(target if isinstance(target, ModelArtifact) else bundle, fmt, out, **options)
    return written, bundle


def _export_heads(model: str, out: Path) -> list[Path]:
    """The model's few-shot heads (every owner's: the CLI runs on the host) beside its towers."""
    from state.heads import HeadStore
    from state.settings import get_settings
    from trainer.export.heads import export_heads

    store = HeadStore(get_settings().heads_dir)
    return export_heads({r.id: store.folder(r.id) for r in store.list(model=model)}, out)


def _verify(bundle: object, written: Path, fmt: str, fp16: bool) -> None:
    from trainer.export.onnx import max_abs_diff

    onnx_dir = written if fmt == "onnx" else next(p.parent for p in written.rglob("preprocess.json"))
    diffs = max_abs_diff(bundle, onnx_dir)  # type: ignore[arg-type]
    limit = 1e-2 if fp16 else 1e-4
    worst = max(diffs.values())
    typer.echo("max |onnxruntime - torch|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    if worst > limit:
        typer.echo(f"error: ONNX parity {worst:.2e} exceeds {limit:g}", err=True)
        raise typer.Exit(1)
