"""``diva train CONFIG.yaml [--set key=value ...] [--dry-run]``: post-train a vision tower."""

from __future__ import annotations

from typing import Annotated

import typer


def _overrides(items: list[str]) -> dict[str, object]:
    from trainer.recipes import parse_override

    return dict(parse_override(item) for item in items)


def train(
    config: Annotated[str, typer.Argument(help="Recipe YAML file or preset name (trainer/recipes/presets).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set steps=100 --set optim.lr=1e-5."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved recipe and parameter counts, then exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Post-train a CLIP vision tower with feedback from a frozen diffusion model (DIVA).

    Re-running the same command resumes from the newest checkpoint in OUTPUT_DIR/checkpoints.
    Several GPUs: torchrun --nproc_per_node=8 -m cli.main train CONFIG (batch_size is per GPU).
    """
    from trainer.backbones.factory import UnknownBackboneError
    from trainer.feedback.diffusion import DiffusionFolderError
    from trainer.recipes import RecipeError, dump_train_config, load_train_config
    from trainer.train.checkpoint import CheckpointMismatchError
    from trainer.train.data import DatasetError

    known = (RecipeError, DatasetError, UnknownBackboneError, DiffusionFolderError, CheckpointMismatchError)
    try:
        recipe = load_train_config(config, _overrides(set_ or []))
        if dry_run:
            _dry_run(recipe, dump_train_config(recipe))
            return
        result = _run(recipe, quiet=quiet)
    except known as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        raise typer.Exit(2) from None
    if result is None:
        return
    state = "stopped" if result.stopped else "done"
    typer.echo(
        f"{state}: {result.steps_done} steps, final loss {result.final_loss}, "
        f"skipped images {result.skipped_images}, model in {result.output_dir}"
    )


def _dry_run(recipe, text: str) -> None:
    import torch

    from trainer.train.data import discover_images
    from trainer.train.model import build_setup

    typer.echo(text.rstrip())
    images = len(discover_images(recipe.data.path, recipe.data.kind))
    setup = build_setup(recipe, torch.device("cpu"), torch.float32)
    typer.echo(f"# images: {images}")
    typer.echo(f"# condition tokens: {setup.condition_length} (patches: {setup.num_patches})")
    for name, count in setup.parameter_counts().items():
        typer.echo(f"# parameters {name}: {count:,}")


def _run(recipe, *, quiet: bool):
    import os

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from trainer.feedback.diffusion import check_diffusion_folder
    from trainer.train import ProgressEvent, run_training
    from trainer.train.data import discover_images

    check_diffusion_folder(recipe.diffusion)  # fail before drawing a progress bar
    discover_images(recipe.data.path, recipe.data.kind)
    if quiet or os.environ.get("RANK", "0") != "0":
        try:
            return run_training(recipe)
        finally:
            _leave_process_group()
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[rate]:.1f} img/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:
        task = bar.add_task("train", total=recipe.steps, loss=float("nan"), lr=0.0, rate=0.0)

        def on_progress(event: ProgressEvent) -> None:
            bar.update(task, completed=event.step, loss=event.loss, lr=event.lr, rate=event.images_per_s)

        try:
            return run_training(recipe, progress=on_progress)
        finally:
            _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun the loop joined a process group; leave it cleanly before the process exits."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def register(app: typer.Typer) -> None:
    """Attach ``diva train`` to the root app."""
    app.command("train")(train)
