"""Honest hand-built models and tiny on-disk benchmarks for the evaluation tests.

``ColorModel`` is a real ``nn.Module`` with ``encode_image``/``encode_text``: its image feature
says how close the image's mean colour is to each named colour, its text feature is the colour
word the text mentions. Image and text features therefore agree by construction, which is what
the zero-shot and MMVP tests need to tell a correct evaluator from a broken one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from trainer.backbones import ClipBundle

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 40),
    "blue": (30, 40, 220),
    "yellow": (235, 225, 40),
    "purple": (140, 40, 190),
    "cyan": (40, 210, 215),
    "orange": (250, 140, 10),
    "gray": (128, 128, 128),
}
NAMES = list(COLORS)


class ColorTokenizer:
    """Text -> index of the first colour word in it (-1: none)."""

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = []
        for text in texts:
            words = text.lower().replace(".", " ").split()
            ids.append(next((NAMES.index(w) for w in words if w in COLORS), -1))
        return torch.tensor(ids, dtype=torch.long)


class ColorModel(torch.nn.Module):
    def __init__(self, logit_bias: float | None = None, blind: bool = False) -> None:
        super().__init__()
        self.register_buffer("palette", torch.tensor(list(COLORS.values()), dtype=torch.float32) / 255.0)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = None if logit_bias is None else torch.nn.Parameter(torch.tensor(logit_bias))
        self.blind = blind

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        mean = pixels.mean(dim=(2, 3))  # (B, 3) in 0..1
        if self.blind:
            mean = torch.full_like(mean, 0.5)
        distance = torch.cdist(mean, self.palette) ** 2
        return torch.exp(-distance / 0.02)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(ids), len(COLORS))
        known = ids >= 0
        out[known, ids[known]] = 1.0
        return out


def color_bundle(**kwargs) -> ClipBundle:
    return ClipBundle(
        model=ColorModel(**kwargs),
        preprocess=lambda image: TF.to_tensor(image.convert("RGB").resize((8, 8))),
        tokenizer=ColorTokenizer(),
        architecture="color-test",
        model_cfg={"embed_dim": len(COLORS)},
        preprocess_cfg={},
        source="color-test",
    )


def solid(color: str, size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), COLORS[color])


def write_mmvp(
    root: Path,
    pairs: list[tuple[str, tuple[str, str], tuple[str, str]]],
    *,
    image_dir: str = "MLLM_VLM Images",
) -> Path:
    """An MMVP folder: each pair is (Type, (colour of image 1, colour of image 2), (statement 1, 2))."""
    rows = []
    for index, (kind, colors, statements) in enumerate(pairs):
        folder = root / image_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        for slot in (0, 1):
            qid = 2 * index + 1 + slot
            solid(colors[slot]).save(folder / f"{qid}.jpg", quality=95)
            rows.append((qid, kind, statements[slot]))
    with open(root / "Questions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Question ID", "Type", "Statement"])
        writer.writerows(rows)
    return root


@pytest.fixture
def color_mmvp(tmp_path: Path) -> Path:
    """Two Color pairs and one Orientation pair, all answerable from colour alone."""
    return write_mmvp(
        tmp_path / "mmvp",
        [
            ("Color", ("red", "blue"), ("a red square", "a blue square")),
            ("Color", ("green", "yellow"), ("a green square", "a yellow square")),
            ("Orientation", ("purple", "orange"), ("a purple arrow", "an orange arrow")),
        ],
    )


@pytest.fixture
def make_bundle():
    """``make_bundle(logit_bias=None, blind=False)`` -> a ClipBundle around :class:`ColorModel`."""
    return color_bundle


@pytest.fixture
def mmvp_writer():
    """``mmvp_writer(root, pairs, image_dir=...)``: see :func:`write_mmvp`."""
    return write_mmvp


@pytest.fixture
def solid_image():
    """``solid_image(colour_name, size=16)`` -> a PIL image of one of :data:`COLORS`."""
    return solid


@pytest.fixture
def color_names() -> list[str]:
    return list(NAMES)
