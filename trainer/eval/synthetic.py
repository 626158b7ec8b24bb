"""A procedurally drawn MMVP-VLM, written in the official layout so the same reader scores it.

Real MMVP-VLM images cannot be shipped or downloaded here; this benchmark draws pairs that
differ in one property per MMVP pattern with the lab's scene code (``trainer.scenes``, the very
world the lab models are trained on), plus a folder-per-class classification set for the
zero-shot check. Everything is a function of ``seed``: the same call writes the same bytes.

    <out>/Questions.csv                          Question ID, Type, Statement
    <out>/MLLM_VLM Images/<Type>/<id>.jpg        odd id = first image of a pair
    <out>/classify/<label>/<n>.png               one task of scenes.CLASSIFICATION_TASKS
    <out>/classify/templates.txt                 prompt templates that fit the drawn world
    <out>/benchmark.json                         how it was made
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

import numpy as np

from trainer.eval.mmvp_data import COLUMNS, IMAGE_DIRS, QUESTIONS_FILE, TYPE_OF_PATTERN
from trainer.eval.zeroshot import TEMPLATES_FILE

CLASSIFY_DIR = "classify"
# Prompts in the drawn world's own words (its captions say "a red star", never "itap of a"):
# written as classify/templates.txt, which evaluate_zeroshot uses when no templates are given.
CLASSIFY_TEMPLATES = ("a {}.", "a photo of a {}.", "a drawing of a {}.", "{}")
_PATTERN_STREAM, _CLASSIFY_STREAM = 0, 1


def make_synthetic(
    out_dir: Path | str,
    pairs_per_pattern: int = 15,
    seed: int = 0,
    size: int = 64,
    *,
    classify_task: str = "shape",
    images_per_class: int = 10,
    image_format: Literal["jpg", "png"] = "jpg",
) -> Path:
    """Write the benchmark into ``out_dir`` (created; existing benchmark files are overwritten)."""
    from trainer.scenes import CLASSIFICATION_TASKS, PATTERNS, draw_labelled, draw_pair

    if pairs_per_pattern < 1:
        raise ValueError(f"pairs_per_pattern must be at least 1, got {pairs_per_pattern}")
    if images_per_class < 0:
        raise ValueError(f"images_per_class must be >= 0, got {images_per_class}")
    if classify_task not in CLASSIFICATION_TASKS:
        raise ValueError(
            f"unknown classify_task {classify_task!r}; choose one of {list(CLASSIFICATION_TASKS)}"
        )
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    unknown = [p for p in PATTERNS if p not in TYPE_OF_PATTERN]
    if unknown:
        raise ValueError(f"scene patterns without an MMVP type folder: {unknown}")

    out = Path(out_dir)
    image_root = out / IMAGE_DIRS[0]
    rows: list[tuple[int, str, str]] = []
    for index, pattern in enumerate(PATTERNS):
        kind = TYPE_OF_PATTERN[pattern]
        folder = image_root / kind
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, _PATTERN_STREAM, index])
        for n in range(pairs_per_pattern):
            pair = draw_pair(pattern, rng, size)
            first_id = index * 2 * pairs_per_pattern + 2 * n + 1
            for slot in (0, 1):
                qid = first_id + slot
                _save(pair.images[slot], folder / f"{qid}.{image_format}")
                rows.append((qid, kind, pair.statements[slot]))
    with open(out / QUESTIONS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)

    labels = CLASSIFICATION_TASKS[classify_task]
    for index, label in enumerate(labels):
        folder = out / CLASSIFY_DIR / label
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, _CLASSIFY_STREAM, index])
        for n in range(images_per_class):
            _save(draw_labelled(classify_task, label, rng, size), folder / f"{n:04d}.png")

    (out / CLASSIFY_DIR).mkdir(parents=True, exist_ok=True)
    (out / CLASSIFY_DIR / TEMPLATES_FILE).write_text("\n".join(CLASSIFY_TEMPLATES) + "\n")
    meta = {
        "generator": "trainer.eval.synthetic.make_synthetic",
        "seed": seed,
        "size": size,
        "pairs_per_pattern": pairs_per_pattern,
        "patterns": list(PATTERNS),
        "classify_task": classify_task,
        "classify_labels": list(labels),
        "images_per_class": images_per_class,
        "image_format": image_format,
    }
    (out / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _save(image, path: Path) -> None:
    if path.suffix == ".jpg":
        # High quality, no chroma subsampling: fine detail (thin stripes, letters) must survive.
        image.convert("RGB").save(path, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(path, format="PNG")
