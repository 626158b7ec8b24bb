"""Scoring lab models with the project's evaluation code on the drawn benchmark.

The benchmark is ``trainer.eval.make_synthetic`` (MMVP-VLM layout, more pairs than the official 15
per pattern so one pair is not worth 0.74 points) plus one folder-per-class set per coarse task.
Zero-shot uses the lab's own caption templates (the tiny text tower never saw "itap of a"), and
colours are named "red shape" because a caption without a shape word says "shape".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.scenes import CLASSIFICATION_TASKS, COLORS

LAB_TEMPLATES = ("a photo of a {}.", "a drawing of a {}.", "an image of a {}.", "{}")
CLASSNAMES: dict[str, dict[str, str]] = {
    "shape": {shape: shape for shape in CLASSIFICATION_TASKS["shape"]},
    "color": {color: f"{color} shape" for color in COLORS},
}
BENCHMARK_SEED = 2024
"""The development draw: every recipe choice so far was made on it (see trainer.lab.protocol)."""


@dataclass
class LabScores:
    """Synthetic MMVP and zero-shot per coarse task, as the evaluation code returned them."""

    mmvp: Any  # trainer.eval.MMVPResult
    zeroshot_results: dict[str, Any]  # task -> trainer.eval.ZeroShotResult

    @property
    def mmvp_average(self) -> float:
        return float(self.mmvp.average)

    @property
    def zeroshot(self) -> dict[str, float]:
        return {task: float(result.top1) for task, result in self.zeroshot_results.items()}

    @property
    def zeroshot_mean(self) -> float:
        """Mean top-1 over the coarse tasks: the number the 1-point zero-shot gate reads."""
        return sum(self.zeroshot.values()) / len(self.zeroshot)

    def coarse_zeroshot(self) -> Any:
        """One ZeroShotResult for reports: top-1/top-5 averaged over tasks, images and classes summed."""
        from trainer.eval import ZeroShotResult

        results = list(self.zeroshot_results.values())
        return ZeroShotResult(
            top1=self.zeroshot_mean,
            top5=sum(r.top5 for r in results) / len(results),
            num_images=sum(r.num_images for r in results),
            num_classes=sum(r.num_classes for r in results),
            templates=list(LAB_TEMPLATES),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mmvp_average": self.mmvp_average,
            "mmvp_patterns": dict(self.mmvp.patterns),
            "zeroshot": self.zeroshot,
            "zeroshot_mean": self.zeroshot_mean,
        }


def make_lab_benchmark(
    out: Path | str, *, pairs_per_pattern: int = 40, images_per_class: int = 40, seed: int = BENCHMARK_SEED
) -> Path:
    """Write ``<out>/mmvp`` (pairs + shape classes) and ``<out>/<task>/classify`` for other tasks.

    ``seed`` picks the draw: the development draw by default, a test draw for held-out scores.
    """
    from trainer.eval import make_synthetic

    out = Path(out)
    for index, task in enumerate(CLASSIFICATION_TASKS):
        make_synthetic(
            out / ("mmvp" if index == 0 else task),
            pairs_per_pattern=pairs_per_pattern if index == 0 else 1,
            seed=seed,
            classify_task=task,
            images_per_class=images_per_class,
            image_format="png",
        )
    return out


def classify_dir(benchmark: Path, task: str) -> Path:
    first = next(iter(CLASSIFICATION_TASKS))
    return benchmark / ("mmvp" if task == first else task) / "classify"


def evaluate_lab(bundle: Any, benchmark: Path | str, *, device: str = "cpu") -> LabScores:
    """Score a CLIP bundle on a benchmark written by :func:`make_lab_benchmark`."""
    from trainer.eval import evaluate_mmvp, evaluate_zeroshot

    benchmark = Path(benchmark)
    mmvp = evaluate_mmvp(bundle, benchmark / "mmvp", device=device)
    zeroshot = {
        task: evaluate_zeroshot(
            bundle, classify_dir(benchmark, task), templates=LAB_TEMPLATES, classnames=names, device=device
        )
        for task, names in CLASSNAMES.items()
    }
    return LabScores(mmvp, zeroshot)
