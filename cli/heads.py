"""`diva heads fit|list|show|delete`: few-shot heads on a running service (see docs/heads.md).

`fit` reads a local folder in folder-per-class layout (``<folder>/<label>/<image>``) or names an
uploaded dataset; `diva classify --head ID` uses a head. Same ``--url`` / ``--api-key`` as the
other client verbs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cli.serve import KEY, MODEL, URL, _call

heads_app = typer.Typer(
    help="Few-shot heads (GDA, Tip-Adapter) fitted without training.", no_args_is_help=True
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def register(app: typer.Typer) -> None:
    """Attach ``diva heads`` to the root app."""
    app.add_typer(heads_app, name="heads")


def folder_examples(folder: Path) -> dict[str, list[Path]]:
    """{label: image paths} from ``<folder>/<label>/<image>``, sorted, so a fit is repeatable."""
    classes = {
        child.name: sorted(p for p in child.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for child in sorted(folder.iterdir())
        if child.is_dir()
    }
    classes = {label: paths for label, paths in classes.items() if paths}
    if not classes:
        raise typer.BadParameter(f"{folder} has no <label>/<image> subfolders with images")
    return classes


@heads_app.command("fit")
def fit(
    folder: Optional[Path] = typer.Argument(None, help="Folder of <label>/<image> files.", exists=True),
    name: str = typer.Option(..., "--name", help="Name to recognise the head by."),
    dataset: Optional[str] = typer.Option(None, help="An uploaded dataset id instead of a folder."),
    kind: str = typer.Option("gda", help="gda or tip_adapter."),
    shots: Optional[int] = typer.Option(None, help="Examples per label to use (default all)."),
    text_weight: Optional[float] = typer.Option(None, help="Zero-shot term's weight; 0 = pure adapter."),
    template: list[str] = typer.Option([], "--template", "-t", help="Prompt template with '{}'."),
    model: Optional[str] = MODEL,
    url: str = URL,
    api_key: Optional[str] = KEY,
) -> None:
    """Fit a head; prints it as JSON (id, labels, shots, alpha, cv_accuracy)."""
    from service.client import DivaClient

    if (folder is None) == (dataset is None):
        raise typer.BadParameter("give a FOLDER or --dataset (one of them)")
    examples = folder_examples(folder) if folder is not None else None
    with DivaClient(url, api_key) as client:
        head = _call(
            client.fit_head,
            examples,
            name=name,
            model=model,
            kind=kind,
            dataset=dataset,
            shots=shots,
            text_weight=text_weight,
            templates=template or None,
        )
    typer.echo(json.dumps(head, indent=2))


@heads_app.command("list")
def list_heads(
    model: Optional[str] = MODEL,
    url: str = URL,
    api_key: Optional[str] = KEY,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Heads of this API key."""
    from service.client import DivaClient

    with DivaClient(url, api_key) as client:
        heads = _call(client.heads, model)
    if as_json:
        typer.echo(json.dumps(heads, indent=2))
        return
    for head in heads:
        cv = "-" if head["cv_accuracy"] is None else f"{100 * head['cv_accuracy']:.1f}%"
        typer.echo(
            f"{head['id']}  {head['name']:<20} {head['model']:<20} {head['kind']:<11} "
            f"{len(head['labels'])} labels x {head['shots']} shots  cv={cv}"
        )


@heads_app.command("show")
def show(head_id: str, url: str = URL, api_key: Optional[str] = KEY) -> None:
    """One head as JSON."""
    from service.client import DivaClient

    with DivaClient(url, api_key) as client:
        typer.echo(json.dumps(_call(client.head, head_id), indent=2))


@heads_app.command("delete")
def delete(head_id: str, url: str = URL, api_key: Optional[str] = KEY) -> None:
    """Delete a head."""
    from service.client import DivaClient

    with DivaClient(url, api_key) as client:
        _call(client.delete_head, head_id)
    typer.echo(f"deleted {head_id}")
