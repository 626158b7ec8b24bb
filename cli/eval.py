"""``diva eval``: MMVP-VLM, zero-shot, retrieval, the synthetic benchmark and reports.

Heavy imports live inside the commands. ``--model`` takes a path, a built-in or registry model
id (looked up in the built-in folder and ``$DIVA_HOME/models``), ``architecture:tag``, or
anything ``create_clip`` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

eval_app = typer.Typer(
    help="Evaluate encoders: MMVP-VLM pairs, zero-shot, retrieval, reports.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Attach ``diva eval ...`` to the root app."""
    app.add_typer(eval_app, name="eval")


def _roots() -> list[Path]:
    from state.catalog import model_roots
    from state.settings import get_settings

    return model_roots(get_settings())


def _load(spec: str, device: str) -> Any:
    """Registry folders first (built-in, ``$DIVA_HOME/models``), then ``DIVA_MODELS`` ids."""
    from service.inference.registry import parse_model_entry
    from state.settings import get_settings
    from trainer.eval.models import load_model

    roots = _roots()
    if not any((Path(root) / spec).is_dir() for root in roots):
        for entry in get_settings().models:
            configured = parse_model_entry(entry)
            if configured.id == spec:
                source = configured.source + (f":{configured.pretrained}" if configured.pretrained else "")
                bundle = load_model(source, [], device=device)
                bundle.source = spec
                return bundle
    return load_model(spec, roots, device=device)


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr fed by the evaluators' ``progress(done, total)`` callback."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="item", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Bad input ends with one readable line and exit code 2, not a traceback."""
    from trainer.backbones import UnknownBackboneError
    from trainer.eval.encode import ImageReadError
    from trainer.eval.mmvp_data import MMVPDataError
    from trainer.eval.retrieval import RetrievalDataError
    from trainer.eval.zeroshot import ZeroShotDataError

    try:
        yield
    except (
        MMVPDataError,
        ZeroShotDataError,
        RetrievalDataError,
        ImageReadError,
        UnknownBackboneError,
        FileNotFoundError,
        ValueError,
        ImportError,
    ) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _mmvp_table(result: Any) -> None:
    for name, value in result.patterns.items():
        typer.echo(f"  {name:<36} {value:6.1f}")
    typer.echo(f"  {'Average':<36} {result.average:6.1f}  ({result.correct_pairs}/{len(result.pairs)} pairs)")


@eval_app.command("mmvp")
def mmvp(
    model: str = typer.Option(..., "--model", "-m", help="Model id, folder, or architecture:tag."),
    data: Path = typer.Option(..., "--data", "-d", help="MMVP-VLM folder (Questions.csv + images)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write result.json, charts, summary.md here."
    ),
    compare: Optional[str] = typer.Option(None, "--compare", help="Base model to evaluate the same way."),
    protocol: str = typer.Option("standard", help="'standard' (pooled embedding) or 'diva' (non-standard)."),
    seed: int = typer.Option(0, help="Seed of the 'diva' protocol's random tokens."),
    device: str = typer.Option("cpu", help="Torch device."),
    batch_size: int = typer.Option(64, min=1),
) -> None:
    """Score a model on MMVP-VLM (a pair counts only if both statements pick their own image)."""
    from trainer.eval.mmvp import evaluate_mmvp
    from trainer.eval.report import write_report

    with _clear_errors():
        base_result = None
        if compare:
            with _bar(f"MMVP {compare}") as progress:
                base_result = evaluate_mmvp(
                    _load(compare, device), data, protocol=protocol, device=device,
                    batch_size=batch_size, progress=progress, seed=seed,
                )  # fmt: skip
            typer.echo(f"{compare} (base):")
            _mmvp_table(base_result)
        with _bar(f"MMVP {model}") as progress:
            result = evaluate_mmvp(
                _load(model, device), data, protocol=protocol, device=device,
                batch_size=batch_size, progress=progress, seed=seed,
            )  # fmt: skip
        typer.echo(f"{model}:")
        _mmvp_table(result)
        if out is not None:
            result.save(out)
            if base_result is not None:
                base_result.save(out / "base")
            report = write_report(out, base_result, result, names=(compare or "base", model))
            typer.echo(f"wrote {out / 'result.json'} and {report}")


@eval_app.command("zeroshot")
def zeroshot(
    model: str = typer.Option(..., "--model", "-m", help="Model id, folder, or architecture:tag."),
    data: Path = typer.Option(..., "--data", "-d", help="ImageFolder-style dataset: <data>/<class>/<image>."),
    templates: Optional[Path] = typer.Option(None, help="Text file, one prompt template per line ('{}')."),
    classnames: Optional[Path] = typer.Option(None, help="JSON {folder: name} or list of names."),
    compare: Optional[str] = typer.Option(None, "--compare", help="Base model: also apply the publish gate."),
    tolerance: float = typer.Option(1.0, help="Publish gate: allowed top-1 drop in points."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write zeroshot.json here."),
    device: str = typer.Option("cpu"),
    batch_size: int = typer.Option(64, min=1),
) -> None:
    """Zero-shot top-1/top-5 with a prompt-template ensemble; with --compare, the publish gate."""
    from trainer.eval.gate import zero_shot_gate
    from trainer.eval.zeroshot import evaluate_zeroshot

    with _clear_errors():
        prompts = None
        if templates is not None:
            prompts = [line for line in templates.read_text().splitlines() if line.strip()]
        results = {}
        for role, spec in (("base", compare), ("post", model)):
            if spec is None:
                continue
            with _bar(f"zero-shot {spec}") as progress:
                results[role] = evaluate_zeroshot(
                    _load(spec, device), data, templates=prompts, classnames=classnames,
                    device=device, batch_size=batch_size, progress=progress,
                )  # fmt: skip
            r = results[role]
            typer.echo(
                f"{spec}: top-1 {r.top1:.2f}  top-5 {r.top5:.2f}  "
                f"({r.num_images} images, {r.num_classes} classes)"
            )
            if out is not None:
                r.save(out, "zeroshot.json" if role == "post" else "zeroshot_base.json")
        if compare:
            decision = zero_shot_gate(results["base"].top1, results["post"].top1, tolerance)
            typer.echo(f"publish gate {decision.reason}")
            if not decision.passed:
                raise typer.Exit(1)


@eval_app.command("retrieval")
def retrieval(
    model: str = typer.Option(..., "--model", "-m", help="Model id, folder, or architecture:tag."),
    data: Path = typer.Option(..., "--data", "-d", help="CSV (image,caption) or JSONL of pairs."),
    k: list[int] = typer.Option([1, 5, 10], "--k", help="Recall@k cut-offs (repeat the option)."),
    device: str = typer.Option("cpu"),
    batch_size: int = typer.Option(64, min=1),
) -> None:
    """Image-text retrieval recall@k in both directions."""
    from trainer.eval.retrieval import evaluate_retrieval

    with _clear_errors():
        with _bar(f"retrieval {model}") as progress:
            r = evaluate_retrieval(
                _load(model, device), data, ks=k, device=device, batch_size=batch_size, progress=progress
            )
        typer.echo(f"{model}: {r.num_images} images, {r.num_texts} captions")
        typer.echo("  image->text " + "  ".join(f"{key} {v:.1f}" for key, v in r.image_to_text.items()))
        typer.echo("  text->image " + "  ".join(f"{key} {v:.1f}" for key, v in r.text_to_image.items()))


@eval_app.command("clip-benchmark")
def clip_benchmark(
    model: str = typer.Option(..., "--model", "-m"),
    dataset: str = typer.Option(..., "--dataset", help="A clip_benchmark dataset name, e.g. cifar10."),
    root: Path = typer.Option(..., "--root", help="Where the dataset already lies (nothing is downloaded)."),
    split: str = typer.Option("test"),
    device: str = typer.Option("cpu"),
    batch_size: int = typer.Option(64, min=1),
) -> None:
    """Run a local clip_benchmark dataset (needs the optional 'benchmarks' extra)."""
    from trainer.eval.benchmark import evaluate_clip_benchmark

    with _clear_errors():
        metrics = evaluate_clip_benchmark(
            _load(model, device), dataset, root, split=split, device=device, batch_size=batch_size
        )
        typer.echo(f"{model} on {dataset}: " + "  ".join(f"{key} {v:.2f}" for key, v in metrics.items()))


@eval_app.command("make-synthetic")
def make_synthetic(
    out: Path = typer.Argument(..., help="Folder to write the benchmark into."),
    pairs_per_pattern: int = typer.Option(15, min=1, help="Pairs per MMVP pattern (official: 15)."),
    seed: int = typer.Option(0),
    size: int = typer.Option(64, min=16, help="Image side in pixels."),
    images_per_class: int = typer.Option(10, min=0, help="Images per class of the classification set."),
    classify_task: str = typer.Option("shape", help="Property the classification set is labelled by."),
) -> None:
    """Draw a seeded MMVP-style benchmark in the official layout (+ a classification set)."""
    from trainer.eval.synthetic import make_synthetic as write

    with _clear_errors():
        folder = write(
            out, pairs_per_pattern, seed, size, classify_task=classify_task, images_per_class=images_per_class
        )
    typer.echo(f"wrote {9 * pairs_per_pattern} pairs and a '{classify_task}' classification set to {folder}")
