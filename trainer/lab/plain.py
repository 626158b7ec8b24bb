"""Plain drawings the lab never drew: a robustness test set for the lab models' zero-shot.

The lab's scenes come from one renderer (``trainer.scenes.render``: 4x supersampled, white
canvas, fixed outline widths, objects laid out on a grid), so a model can score well on them and
still call a plain blue circle on white "triangle". This module draws the five shapes with its
own code, on purpose not sharing geometry or style with that renderer: one filled shape (or an
outline, ``--hollow``) of a lab colour, anywhere on the canvas at 25-90 % of its width, on white,
light or mid grey, anti-aliased (supersampled) or with hard pixel edges, rotated a little and,
for triangles and arrows, pointing any of the four ways. A model that learned shapes rather than
the renderer reads them; :func:`evaluate_plain` reports top-1 over the five shapes.

Written as a folder per class (``<out>/<shape>/<index>.png``), so the project's generic zero-shot
evaluation (``trainer.eval.evaluate_zeroshot``) scores it, with the lab's templates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from trainer.scenes.world import COLORS, SHAPES

PLAIN_SEED = 9001
"""Never a development or test draw of the MMVP protocol; not tuned on either."""
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((255, 255, 255), (236, 236, 236), (200, 200, 200))


@dataclass(frozen=True)
class PlainStyle:
    """How one drawing looks; every field is drawn at random by :func:`sample_style`."""

    shape: str
    color: tuple[int, int, int]
    background: tuple[int, int, int]
    scale: float  # the shape's width as a fraction of the canvas
    cx: float
    cy: float
    angle_deg: float  # the direction (0, 90, 180, 270 for pointing shapes) plus a small tilt
    antialias: bool
    hollow: bool = False


def sample_style(rng: np.random.Generator, shape: str, *, hollow: bool = False) -> PlainStyle:
    scale = float(rng.uniform(0.25, 0.9))
    margin = scale / 2
    direction = float(rng.choice([0, 90, 180, 270])) if shape in ("triangle", "arrow") else 0.0
    return PlainStyle(
        shape=shape,
        color=COLORS[str(rng.choice(list(COLORS)))],
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        scale=scale,
        cx=float(rng.uniform(margin, 1 - margin)),
        cy=float(rng.uniform(margin, 1 - margin)),
        angle_deg=direction + float(rng.uniform(-12, 12)),
        antialias=bool(rng.random() < 0.5),
        hollow=hollow,
    )


def _outline(shape: str) -> list[tuple[float, float]] | None:
    """The shape on a unit square centred at 0 (y down, pointing up); None for a circle."""
    if shape == "box":
        return [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if shape == "triangle":  # equilateral, centroid at the origin
        h = math.sqrt(3) / 2
        return [(0.0, -2 * h / 3), (0.5, h / 3), (-0.5, h / 3)]
    if shape == "star":  # five points, inner radius 0.38 of the outer
        return [
            ((0.5 if i % 2 == 0 else 0.19) * math.sin(math.pi * i / 5),
             -(0.5 if i % 2 == 0 else 0.19) * math.cos(math.pi * i / 5))
            for i in range(10)
        ]  # fmt: skip
    if shape == "arrow":  # a thin shaft and a wide head: another proportion than the lab's
        return [
            (0.0, -0.5),
            (0.42, -0.08),
            (0.15, -0.08),
            (0.15, 0.5),
            (-0.15, 0.5),
            (-0.15, -0.08),
            (-0.42, -0.08),
        ]
    return None


def draw_plain(style: PlainStyle, size: int = 64) -> Image.Image:
    """One drawing as an RGB image of ``size`` pixels."""
    factor = 4 if style.antialias else 1
    big = size * factor
    canvas = Image.new("RGB", (big, big), style.background)
    draw = ImageDraw.Draw(canvas)
    cx, cy, width = style.cx * big, style.cy * big, style.scale * big
    line = max(1, round(0.08 * width)) if style.hollow else 0
    paint: dict[str, Any] = {"outline": style.color, "width": line} if style.hollow else {"fill": style.color}
    points = _outline(style.shape)
    if points is None:
        draw.ellipse([cx - width / 2, cy - width / 2, cx + width / 2, cy + width / 2], **paint)
    else:
        turn = math.radians(style.angle_deg)
        cos, sin = math.cos(turn), math.sin(turn)
        placed = [(cx + width * (x * cos - y * sin), cy + width * (x * sin + y * cos)) for x, y in points]
        draw.polygon(placed, **paint)
    return canvas.resize((size, size), Image.Resampling.LANCZOS) if factor > 1 else canvas


def make_plain_set(
    out: Path | str, *, per_shape: int = 60, seed: int = PLAIN_SEED, size: int = 64, hollow: bool = False
) -> Path:
    """Write ``per_shape`` drawings of each shape under ``out/<shape>/`` (idempotent per seed)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        folder = out / shape
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_shape):
            draw_plain(sample_style(rng, shape, hollow=hollow), size).save(folder / f"{index:04d}.png")
    return out


def evaluate_plain(bundle: Any, data: Path | str, *, device: str = "cpu") -> Any:
    """Zero-shot top-1 over the five shapes (a ``trainer.eval.ZeroShotResult``, per class too)."""
    from trainer.eval import evaluate_zeroshot
    from trainer.lab.evaluate import LAB_TEMPLATES

    return evaluate_zeroshot(
        bundle, data, templates=LAB_TEMPLATES, classnames={s: s for s in SHAPES}, device=device
    )


PLAIN_KINDS = ("filled", "hollow")


def plain_set(cache: Path | str, kind: str, per_shape: int = 60) -> Path:
    """The plain test set of ``kind`` under ``cache`` (written on first use, reused after)."""
    if kind not in PLAIN_KINDS:
        raise ValueError(f"plain drawings are {PLAIN_KINDS}, got {kind!r}")
    folder = Path(cache) / f"lab-plain-{kind}-{PLAIN_SEED}-{per_shape}"
    if not folder.is_dir():
        make_plain_set(folder, per_shape=per_shape, hollow=kind == "hollow")
    return folder


def plain_scores(
    bundles: dict[str, Any], cache: Path | str, *, per_shape: int = 60, kinds: tuple[str, ...] = PLAIN_KINDS
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{kind: {model name: {"top1", "per_class"}}}`` for each model on each plain set: what
    ``diva lab plain`` prints and ``diva lab build`` records in ``lab.json``."""
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in kinds:
        folder = plain_set(cache, kind, per_shape)
        scores[kind] = {}
        for name, bundle in bundles.items():
            result = evaluate_plain(bundle, folder)
            scores[kind][name] = {"top1": result.top1, "per_class": result.per_class}
    return scores


def format_plain(scores: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The Markdown table of :func:`plain_scores` (docs/lab.md's)."""
    shapes = list(SHAPES)
    lines = [
        "| drawings | model | all | " + " | ".join(shapes) + " |",
        "|---|---|---|" + "---|" * len(shapes),
    ]
    for kind, models in scores.items():
        for name, score in models.items():
            cells = " | ".join(f"{score['per_class'][s]:.1f}" for s in shapes)
            lines.append(f"| {kind} | {name} | {score['top1']:.1f} | {cells} |")
    return "\n".join(lines) + "\n"
