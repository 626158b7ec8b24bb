"""The held-out protocol: recipes are chosen on a development draw, reported on test draws.

Every recipe choice in docs/lab-log.md was made on one benchmark draw (seed 2024, 40 pairs per
pattern), so a gain measured there is partly tuned to it. This module is the one owner of the
split: :data:`DEVELOPMENT_SEED` is the draw to tune on, :data:`TEST_SEEDS` are draws nobody
looks at while tuning, each with :data:`TEST_PAIRS_PER_PATTERN` pairs per pattern so that one
pair moves the average by under 0.1 point (100 / (9 patterns x 120 pairs) = 0.093). A reported
figure is the mean +- sample std over the test draws (and, across builds, over training seeds).

Draws are written once per cache folder and reused; writing one takes about two seconds and
scoring a lab CLIP on it about three.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.lab.evaluate import BENCHMARK_SEED, LabScores, evaluate_lab, make_lab_benchmark

DEVELOPMENT_SEED = BENCHMARK_SEED
TEST_SEEDS: tuple[int, ...] = (7001, 7002, 7003, 7004, 7005)
TEST_PAIRS_PER_PATTERN = 120
TEST_IMAGES_PER_CLASS = 40


def test_draw(cache: Path | str, seed: int, pairs_per_pattern: int = TEST_PAIRS_PER_PATTERN) -> Path:
    """The benchmark of test draw ``seed`` under ``cache`` (written on first use, atomically)."""
    if seed == DEVELOPMENT_SEED:
        raise ValueError(f"seed {seed} is the development draw; test draws must be other seeds")
    final = Path(cache) / f"test-{seed}-{pairs_per_pattern}"
    if (final / ".complete").is_file():
        return final
    staging = final.with_name(f".{final.name}-{uuid.uuid4().hex[:8]}")
    make_lab_benchmark(
        staging, pairs_per_pattern=pairs_per_pattern, images_per_class=TEST_IMAGES_PER_CLASS, seed=seed
    )
    (staging / ".complete").write_text("ok\n")
    try:
        staging.rename(final)
    except OSError:  # a concurrent caller finished first
        shutil.rmtree(staging, ignore_errors=True)
    return final


@dataclass(frozen=True)
class HeldOut:
    """One model's scores on each test draw, in draw order."""

    seeds: tuple[int, ...]
    scores: tuple[LabScores, ...]

    @property
    def mmvp(self) -> np.ndarray:
        return np.array([s.mmvp_average for s in self.scores])

    @property
    def zeroshot(self) -> np.ndarray:
        return np.array([s.zeroshot_mean for s in self.scores])


def evaluate_held_out(
    bundle: Any,
    cache: Path | str,
    *,
    seeds: tuple[int, ...] = TEST_SEEDS,
    pairs_per_pattern: int = TEST_PAIRS_PER_PATTERN,
    device: str = "cpu",
) -> HeldOut:
    """Score ``bundle`` on every test draw (MMVP and the coarse zero-shot tasks)."""
    scores = tuple(
        evaluate_lab(bundle, test_draw(cache, seed, pairs_per_pattern), device=device) for seed in seeds
    )
    return HeldOut(tuple(seeds), scores)


def _stat(values: np.ndarray) -> dict[str, float]:
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "min": float(values.min()), "max": float(values.max())}


def compare_held_out(base: HeldOut, post: HeldOut) -> dict[str, Any]:
    """The gain on each test draw and its mean +- std: what docs and reports quote."""
    if base.seeds != post.seeds:
        raise ValueError(f"different test draws: {base.seeds} vs {post.seeds}")
    gain, zs_gain = post.mmvp - base.mmvp, post.zeroshot - base.zeroshot
    patterns = list(base.scores[0].mmvp.patterns)
    return {
        "protocol": {
            "development_seed": DEVELOPMENT_SEED,
            "test_seeds": list(base.seeds),
            "pairs_per_pattern": len(base.scores[0].mmvp.pairs) // max(len(patterns), 1),
        },
        "draws": [
            {
                "seed": seed,
                "base": float(b),
                "post": float(p),
                "gain": float(p - b),
                "zeroshot_gain": float(z),
            }
            for seed, b, p, z in zip(base.seeds, base.mmvp, post.mmvp, zs_gain)
        ],
        "base": _stat(base.mmvp),
        "post": _stat(post.mmvp),
        "gain": _stat(gain),
        "zeroshot_base": _stat(base.zeroshot),
        "zeroshot_gain": _stat(zs_gain),
        "pattern_gain": {
            pattern: float(
                np.mean(
                    [
                        p.mmvp.patterns[pattern] - b.mmvp.patterns[pattern]
                        for b, p in zip(base.scores, post.scores)
                    ]
                )
            )
            for pattern in patterns
        },
    }


def format_held_out(comparison: dict[str, Any], names: tuple[str, str] = ("base", "post")) -> str:
    """Markdown: one row per test draw, then mean +- std (the numbers docs/lab.md quotes)."""
    lines = [
        f"Held-out: test draws {comparison['protocol']['test_seeds']} "
        f"({comparison['protocol']['pairs_per_pattern']} pairs per pattern); "
        f"development draw {comparison['protocol']['development_seed']} not included.",
        "",
        f"| draw | {names[0]} MMVP | {names[1]} MMVP | gain | zero-shot gain |",
        "|---|---|---|---|---|",
    ]
    for draw in comparison["draws"]:
        lines.append(
            f"| {draw['seed']} | {draw['base']:.1f} | {draw['post']:.1f} | {draw['gain']:+.1f} "
            f"| {draw['zeroshot_gain']:+.2f} |"
        )
    g, z = comparison["gain"], comparison["zeroshot_gain"]
    lines.append(
        f"| mean ± std | {comparison['base']['mean']:.1f} | {comparison['post']['mean']:.1f} "
        f"| {g['mean']:+.1f} ± {g['std']:.1f} (min {g['min']:+.1f}) | {z['mean']:+.2f} ± {z['std']:.2f} |"
    )
    return "\n".join(lines) + "\n"


def plot_held_out(base: HeldOut, post: HeldOut, path: Path | str, names: tuple[str, str]) -> Path:
    """Per-pattern bars of both models, each averaged over the test draws (docs/lab.md's chart)."""
    from trainer.eval import MMVPResult
    from trainer.eval.report import mmvp_chart

    def mean_result(held: HeldOut) -> MMVPResult:
        patterns = list(held.scores[0].mmvp.patterns)
        means = {p: float(np.mean([s.mmvp.patterns[p] for s in held.scores])) for p in patterns}
        return MMVPResult(average=float(held.mmvp.mean()), patterns=means, pairs=[])

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return mmvp_chart(path, mean_result(base), mean_result(post), names)
