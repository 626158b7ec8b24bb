"""``diva lab build``: the miniature lab that trains the built-in models and tests the method offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

lab_app = typer.Typer(help="The miniature lab: built-in models and an offline test of diffusion feedback.")


def register(app: typer.Typer) -> None:
    """Attach ``diva lab ...`` to the root app."""
    app.add_typer(lab_app, name="lab")


@lab_app.command("build")
def build(
    quick: bool = typer.Option(False, "--quick", help="Every stage on a few steps (a smoke test)."),
    seed: int = typer.Option(0, "--seed", help="One seed for data, initialisation and training."),
    out: Path = typer.Option(Path("var/lab"), "--out", help="Working folder: data, models, runs, report."),
    recipe: str = typer.Option("lab-diva", "--recipe", help="Post-training recipe (preset name or YAML)."),
    override: Optional[list[str]] = typer.Option(
        None, "--set", help="Post-training recipe override key=value (repeatable), e.g. steps=100."
    ),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="A JSON/YAML LabBuildConfig (clip/diffusion knobs); flags win over it."
    ),
    install: bool = typer.Option(False, "--install", help="Copy the built models into trainer/lab/builtin."),
    compare: bool = typer.Option(
        False, "--compare", help="Also post-train the base with DIVA's own condition (about 50 s more)."
    ),
    ceiling: bool = typer.Option(
        False,
        "--ceiling",
        help="Also run the feedback-ceiling probe (what feedback could teach; about 3 min more on 2 cores).",
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
    reuse: Optional[Path] = typer.Option(
        None,
        "--reuse",
        help="Post-train an existing lab-clip-base and lab-sd from this models folder (a build's "
        "<out>/models or trainer/lab/builtin) instead of pretraining new ones.",
    ),
) -> None:
    """Generate -> pretrain CLIP -> pretrain diffusion -> evaluate -> post-train -> evaluate."""
    import torch
    import yaml
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from trainer.lab.pipeline import (
        CEILING_STEPS,
        COMPARISON_VARIANTS,
        STAGES,
        LabBuildConfig,
        build_lab,
        install_builtin,
    )
    from trainer.recipes.schema import parse_override

    if threads:
        torch.set_num_threads(threads)
    raw = yaml.safe_load(config_file.read_text()) if config_file else {}
    overrides = dict(raw.pop("recipe_overrides", {}) or {})
    overrides.update(parse_override(item) for item in override or [])
    fields = {**raw, "seed": seed, "out": out, "recipe": recipe, "recipe_overrides": overrides}
    if reuse is not None:
        fields["reuse"] = reuse
    if ceiling:
        fields["ceiling_steps"] = CEILING_STEPS
    if compare:
        fields["variants"] = {**COMPARISON_VARIANTS, **raw.get("variants", {})}
    try:
        config = LabBuildConfig.quick(**fields) if quick else LabBuildConfig.model_validate(fields)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error

    console = Console()
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # stages take minutes, 2.4x longer on some 2-core CPUs (docs/lab-log.md)
        console=console,
    ) as bars:
        tasks = {stage: bars.add_task(stage, total=1, note="", start=False) for stage in STAGES}

        def progress(stage: str, done: int, total: int, note: str) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, note="")
            task = tasks[stage]
            bars.start_task(task)
            bars.update(task, completed=done, total=total, note=note)

        result = build_lab(config, progress=progress)
    console.print(
        json.dumps(
            {
                "base": result.base,
                "post": result.post,
                "seconds": result.stage_seconds,
                "cpu_seconds": result.stage_cpu_seconds,
            },
            indent=2,
        )
    )
    if result.held_out is not None:
        from trainer.lab.protocol import format_held_out

        console.print(
            "development draw (tuned on): MMVP {:.1f} -> {:.1f}".format(
                result.base["mmvp_average"], result.post["mmvp_average"]
            )
        )
        console.print(format_held_out(result.held_out, ("lab-clip-base", "lab-clip-diva")), markup=False)
    if result.plain is not None:
        from trainer.lab.plain import format_plain

        console.print("plain drawings the lab never drew, zero-shot top-1 (%)")
        console.print(format_plain(result.plain), markup=False)
    console.print(f"models: {result.models_dir}  report: {result.report_dir}")
    if install:
        console.print(f"installed into {install_builtin(result.models_dir)}")


@lab_app.command("summary")
def summary(folders: list[Path] = typer.Argument(..., help="Build folders (--out of each seed).")) -> None:
    """Mean and spread over seeds of every lab score, as Markdown (what docs/lab-log.md reports)."""
    from trainer.lab.summary import load_reports, summarise

    try:
        typer.echo(summarise(load_reports(folders)), nl=False)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error


@lab_app.command("heldout")
def heldout(
    model: str = typer.Argument("lab-clip-diva", help="Model id (built-in or registry) to score."),
    base: str = typer.Option("lab-clip-base", help="Model id it is compared with."),
    cache: Optional[Path] = typer.Option(
        None, help="Where test draws are kept; default DIVA_HOME/benchmarks."
    ),
    pairs: int = typer.Option(0, min=0, help="Pairs per pattern; 0 = the protocol's (120)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    chart: Optional[Path] = typer.Option(None, help="Also write a per-pattern PNG chart here."),
) -> None:
    """Score MODEL against BASE on the held-out test draws (never used for tuning): mean ± std."""
    from state.catalog import ModelNotFound, find_model
    from state.settings import get_settings
    from trainer.backbones.factory import create_clip
    from trainer.lab.protocol import (
        TEST_PAIRS_PER_PATTERN,
        compare_held_out,
        evaluate_held_out,
        format_held_out,
        plot_held_out,
    )

    settings = get_settings()
    folder = cache or settings.benchmarks_dir / "lab-heldout"
    results = []
    for model_id in (base, model):
        try:
            artifact = find_model(model_id, settings)
        except (ModelNotFound, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from None
        bundle = create_clip(str(artifact.open_clip_dir))
        results.append(evaluate_held_out(bundle, folder, pairs_per_pattern=pairs or TEST_PAIRS_PER_PATTERN))
    comparison = compare_held_out(*results)
    if chart is not None:
        plot_held_out(results[0], results[1], chart, (base, model))
    typer.echo(
        json.dumps(comparison, indent=2) if as_json else format_held_out(comparison, (base, model)), nl=False
    )


@lab_app.command("plain")
def plain(
    models: list[str] = typer.Argument(
        None, help="Model ids, or model folders holding open_clip/ (default: lab-clip-base lab-clip-diva)."
    ),
    per_shape: int = typer.Option(60, min=1, help="Drawings per shape (five shapes)."),
    hollow: bool = typer.Option(False, "--hollow", help="Outlines only (default: filled shapes)."),
    both: bool = typer.Option(False, "--both", help="Filled shapes and outlines."),
    cache: Optional[Path] = typer.Option(
        None, help="Where the drawings are kept; default DIVA_HOME/benchmarks."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Zero-shot shape accuracy on plain drawings the lab renderer never drew (trainer.lab.plain)."""
    from state.catalog import ModelNotFound, find_model
    from state.settings import get_settings
    from trainer.backbones.factory import create_clip
    from trainer.lab.plain import PLAIN_KINDS, format_plain, plain_scores

    settings = get_settings()
    bundles = {}
    for name in models or ["lab-clip-base", "lab-clip-diva"]:
        folder = Path(name) / "open_clip"
        if not folder.is_dir():
            try:
                folder = find_model(name, settings).open_clip_dir
            except (ModelNotFound, ValueError) as exc:
                raise typer.BadParameter(str(exc)) from None
        bundles[name] = create_clip(str(folder))
    kinds = PLAIN_KINDS if both else (("hollow",) if hollow else ("filled",))
    scores = plain_scores(bundles, cache or settings.benchmarks_dir, per_shape=per_shape, kinds=kinds)
    if as_json:
        typer.echo(json.dumps(scores, indent=2))
        return
    typer.echo(f"plain drawings, {per_shape} per shape, zero-shot top-1 (%)")
    typer.echo(format_plain(scores), nl=False)


@lab_app.command("successors")
def successors(
    only: Optional[str] = typer.Option(None, help="Comma-separated recipe names (default: all)."),
    seed: int = typer.Option(0, help="Training seed (feedback images and recipe seed)."),
    out: Path = typer.Option(Path("var/lab-successors"), help="Working folder (images, draws, runs)."),
    threads: int = typer.Option(2, min=1, help="PyTorch threads."),
    models: Optional[Path] = typer.Option(
        None,
        help="A build's models folder (<out>/models of diva lab build, holding lab-clip-base and lab-sd); "
        "default: the built-in models.",
    ),
    save: Optional[Path] = typer.Option(None, help="Also write the results as JSON to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """DIVA and its successors on the same base, development vs held-out (about 40 min, 2 threads)."""
    import torch

    from trainer.lab.successors import SUCCESSOR_RECIPES, compare_successors, format_successors

    names = only.split(",") if only else list(SUCCESSOR_RECIPES)
    unknown = set(names) - set(SUCCESSOR_RECIPES)
    if unknown:
        raise typer.BadParameter(f"unknown recipes {sorted(unknown)}; choose from {list(SUCCESSOR_RECIPES)}")
    torch.set_num_threads(threads)
    where = {}
    if models is not None:
        where = {"base_dir": models / "lab-clip-base", "sd_dir": models / "lab-sd"}
        missing = [str(path) for path in where.values() if not path.is_dir()]
        if missing:
            raise typer.BadParameter(f"no built model at {', '.join(missing)}; run diva lab build first")
    results = compare_successors(
        out,
        recipes={name: SUCCESSOR_RECIPES[name] for name in names},
        seed=seed,
        **where,
        on_result=lambda name, r: typer.echo(
            f"{name}: test gain {r['held_out']['gain']['mean']:+.1f}", err=True
        ),
    )
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(results, indent=2, default=float) + "\n")
    typer.echo(
        json.dumps(results, indent=2, default=float) if as_json else format_successors(results), nl=False
    )
