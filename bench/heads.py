"""Few-shot heads (GDA, Tip-Adapter) against zero-shot on the lab models, at 1/2/4/8/16 shots.

Two fine-grained tasks a lab caption rarely states, drawn here with plain PIL (not the lab's
renderer), the way a user would draw their own images:

* ``arrow``: a filled arrow pointing up/right/down/left, random colour, length and tilt (+-10
  degrees), nearly centred (+-3% of the width);
* ``count``: one to four dots of one random colour at random places.

Per seed, 16 support images per class and ``--test`` held-out images per class are drawn; a head
fitted on the first k support images (alpha and its parameter chosen by cross-validation on
those k alone) is scored on the held-out images, which are never used to fit or to choose.
Prints a markdown table (mean +- std over seeds) and writes a chart.

  .venv/bin/python bench/heads.py                       # both lab models, seeds 0 1 2
  .venv/bin/python bench/heads.py --chart docs/heads.png
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ANGLES = {"up": -90.0, "right": 0.0, "down": 90.0, "left": 180.0}
PALETTE = ((200, 30, 30), (30, 140, 60), (40, 60, 200), (230, 180, 0), (130, 40, 170), (240, 120, 20))
SHOTS = (1, 2, 4, 8, 16)
KINDS = ("gda", "tip_adapter")
SUPERSAMPLE = 4


def draw_arrow(direction: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A block arrow (head + shaft) as one polygon, drawn large and downsampled for smooth edges."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), "white")
    cx, cy = (0.5 + rng.uniform(-0.03, 0.03, 2)) * big
    half = rng.uniform(0.28, 0.38) * big
    angle = math.radians(ANGLES[direction] + rng.uniform(-10, 10))
    ux, uy, px, py = math.cos(angle), math.sin(angle), -math.sin(angle), math.cos(angle)

    def at(along: float, across: float) -> tuple[float, float]:
        return (cx + half * (along * ux + across * px), cy + half * (along * uy + across * py))

    outline = [at(1, 0), at(-0.1, 0.6), at(-0.1, 0.24), at(-1, 0.24), at(-1, -0.24), at(-0.1, -0.24)]
    outline.append(at(-0.1, -0.6))
    ImageDraw.Draw(image).polygon(outline, fill=PALETTE[rng.integers(len(PALETTE))])
    return image.resize((size, size), Image.Resampling.LANCZOS)


def draw_dots(count: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """``count`` same-coloured dots, placed by rejection so they never touch."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), "white")
    draw = ImageDraw.Draw(image)
    color = PALETTE[rng.integers(len(PALETTE))]
    radius = rng.uniform(0.08, 0.11) * big
    placed: list[tuple[float, float]] = []
    while len(placed) < count:
        x, y = rng.uniform(radius * 1.2, big - radius * 1.2, 2)
        if all(math.hypot(x - a, y - b) > 2.5 * radius for a, b in placed):
            placed.append((x, y))
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return image.resize((size, size), Image.Resampling.LANCZOS)


# task -> (class name -> caption for the zero-shot term, drawing function of (class, rng))
TASKS: dict[str, tuple[dict[str, str], Callable[[str, np.random.Generator], Image.Image]]] = {
    "arrow": ({d: f"an arrow pointing {d}" for d in ANGLES}, draw_arrow),
    "count": (
        {"1": "one circle", "2": "two circles", "3": "three circles", "4": "four circles"},
        lambda name, rng: draw_dots(int(name), rng),
    ),
}
TEMPLATES = ("a photo of {}", "{}", "an image of {}", "a drawing of {}")  # the lab captions' own


def draw_set(task: str, per_class: int, rng: np.random.Generator) -> tuple[list[Image.Image], list[str]]:
    """``per_class`` images of every class, interleaved (class 0, 1, 2, 3, 0, ...)."""
    names, draw = TASKS[task][0], TASKS[task][1]
    labels = [name for _ in range(per_class) for name in names]
    return [draw(name, rng) for name in labels], labels


def encode_images(bundle, images: list[Image.Image]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        features = bundle.model.encode_image(torch.stack([bundle.preprocess(i) for i in images]))
    return torch.nn.functional.normalize(features.float(), dim=-1).numpy()


def encode_labels(bundle, captions: list[str]) -> np.ndarray:
    """Each class's prompts encoded, normalised and averaged: the service's zero-shot weights."""
    import torch

    prompts = [t.format(c) for c in captions for t in TEMPLATES]
    with torch.inference_mode():
        text = torch.nn.functional.normalize(
            bundle.model.encode_text(bundle.tokenizer(prompts)).float(), dim=-1
        )
    text = text.reshape(len(captions), len(TEMPLATES), -1).mean(1)
    return torch.nn.functional.normalize(text, dim=-1).numpy()


def run_seed(bundle, task: str, seed: int, test_per_class: int) -> dict[str, list[float]]:
    """Accuracy on held-out images: zero-shot, and each head kind at each shot count."""
    from trainer.heads import fit_head

    rng = np.random.default_rng(seed)
    names = list(TASKS[task][0])
    support, support_labels = draw_set(task, max(SHOTS), rng)
    test, test_labels = draw_set(task, test_per_class, rng)
    f_support, f_test = encode_images(bundle, support), encode_images(bundle, test)
    text = encode_labels(bundle, list(TASKS[task][0].values()))
    truth = np.array([names.index(label) for label in test_labels])
    scale = float(bundle.model.logit_scale.detach().exp())
    out: dict[str, list[float]] = {"zero-shot": [float(((f_test @ text.T).argmax(1) == truth).mean())]}
    for kind in KINDS:
        out[kind] = []
        for shots in SHOTS:
            rows = slice(0, shots * len(names))  # interleaved: the first k of every class
            head = fit_head(
                f_support[rows],
                support_labels[rows],
                kind=kind,
                text=text,
                logit_scale=scale,
                label_order=names,
            )
            out[kind].append(float((head.logits(f_test).argmax(1) == truth).mean()))
    return out


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    spread = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="lab-clip-base,lab-clip-diva")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test", type=int, default=50, help="Held-out images per class.")
    parser.add_argument("--chart", type=Path, default=None, help="Write a PNG chart here.")
    args = parser.parse_args()

    import torch

    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.backbones.factory import create_clip

    torch.set_num_threads(1)
    results: dict[tuple[str, str], dict[str, list[list[float]]]] = {}
    for model_id in args.models.split(","):
        bundle = create_clip(str(BUILTIN_MODELS_DIR / model_id / "open_clip"))
        bundle.model.eval()
        for task in TASKS:
            runs = [run_seed(bundle, task, seed, args.test) for seed in args.seeds]
            results[(model_id, task)] = {key: [run[key] for run in runs] for key in runs[0]}
    print(f"held-out accuracy (%), mean ± std over seeds {args.seeds}, {args.test} test images per class\n")
    print("| model | task | head | zero-shot | " + " | ".join(f"{k} shot" for k in SHOTS) + " |")
    print("|---" * (4 + len(SHOTS)) + "|")
    for (model_id, task), scores in results.items():
        zero = _cell([run[0] for run in scores["zero-shot"]])
        for kind in KINDS:
            cells = [_cell([run[i] for run in scores[kind]]) for i in range(len(SHOTS))]
            print(f"| {model_id} | {task} | {kind} | {zero} | " + " | ".join(cells) + " |")
    if args.chart:
        chart(results, args.chart)
        print(f"\nchart: {args.chart}")


def chart(results: dict[tuple[str, str], dict[str, list[list[float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({task for _, task in results})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), sharey=True)
    for ax, task in zip(np.atleast_1d(axes), tasks):
        for (model_id, t), scores in results.items():
            if t != task:
                continue
            for kind, style in zip(KINDS, ("-o", "--s")):
                means = [100 * np.mean([run[i] for run in scores[kind]]) for i in range(len(SHOTS))]
                ax.plot(SHOTS, means, style, label=f"{model_id} {kind}")
            ax.axhline(100 * np.mean(scores["zero-shot"]), linestyle=":", color="gray")
        ax.axhline(25, color="black", linewidth=0.5)
        ax.set(xscale="log", xticks=SHOTS, xticklabels=[str(k) for k in SHOTS], title=task)
        ax.set(xlabel="shots per class", ylim=(0, 100))
    np.atleast_1d(axes)[0].set_ylabel("held-out accuracy (%)")
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("few-shot heads vs zero-shot (dotted), lab models, own-drawn images")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
