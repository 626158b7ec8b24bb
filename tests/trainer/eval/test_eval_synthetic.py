"""The drawn benchmark: official layout, seeded bytes, read back by the same MMVP reader."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from trainer.eval.mmvp_data import PATTERN_NAMES, TYPE_OF_PATTERN, load_mmvp
from trainer.eval.synthetic import make_synthetic
from trainer.eval.zeroshot import read_image_folder
from trainer.scenes import CLASSIFICATION_TASKS


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_read_back_by_the_mmvp_reader(tmp_path):
    root = make_synthetic(tmp_path / "bench", pairs_per_pattern=2, seed=3, size=32, images_per_class=2)
    pairs = load_mmvp(root)
    assert len(pairs) == 18
    assert [p.pattern for p in pairs] == [name for name in PATTERN_NAMES for _ in range(2)]
    assert [p.question_ids for p in pairs[:3]] == [(1, 2), (3, 4), (5, 6)]
    for pair in pairs:
        assert pair.type == TYPE_OF_PATTERN[pair.pattern]
        assert pair.images[0].parent.name == pair.type and pair.images[0].suffix == ".jpg"
        assert pair.statements[0] != pair.statements[1]
    with open(root / "Questions.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["Question ID", "Type", "Statement"]
    names, samples = read_image_folder(root / "classify")
    assert names == sorted(CLASSIFICATION_TASKS["shape"])
    assert len(samples) == 2 * len(names)
    assert "{}" in (root / "classify" / "templates.txt").read_text()
    meta = json.loads((root / "benchmark.json").read_text())
    assert meta["seed"] == 3 and meta["pairs_per_pattern"] == 2


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = digest(make_synthetic(tmp_path / "a", pairs_per_pattern=2, seed=7, size=32, images_per_class=1))
    b = digest(make_synthetic(tmp_path / "b", pairs_per_pattern=2, seed=7, size=32, images_per_class=1))
    c = digest(make_synthetic(tmp_path / "c", pairs_per_pattern=2, seed=8, size=32, images_per_class=1))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_png_and_colour_task(tmp_path):
    root = make_synthetic(
        tmp_path, pairs_per_pattern=1, size=32, classify_task="color", images_per_class=1, image_format="png"
    )
    assert load_mmvp(root)[0].images[0].suffix == ".png"
    assert read_image_folder(root / "classify")[0] == sorted(CLASSIFICATION_TASKS["color"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pairs_per_pattern": 0}, "pairs_per_pattern must be at least 1"),
        ({"classify_task": "smell"}, "unknown classify_task 'smell'"),
        ({"image_format": "gif"}, "image_format must be 'jpg' or 'png'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic(tmp_path, **kwargs)
