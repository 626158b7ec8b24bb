"""ModelIO.pixels: the PIL steps of open_clip's transform, then ToTensor + Normalize in numpy,
bit for bit what the transform itself gives (RGB, grey, alpha, any size)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.inference.preprocessing import ModelIO, preprocess_from_config


@pytest.fixture(scope="module")
def io() -> ModelIO:
    from trainer.backbones.factory import create_clip

    bundle = create_clip("diva-tiny-vit")
    return ModelIO(
        preprocess_cfg=preprocess_from_config(bundle.preprocess_cfg),
        tokenizer=bundle.tokenizer,
        context_length=bundle.context_length,
        embed_dim=bundle.embed_dim,
    )


@pytest.mark.parametrize(
    ("mode", "size"),
    [("RGB", (96, 64)), ("L", (40, 40)), ("RGBA", (33, 77)), ("P", (64, 64)), ("RGB", (8, 8))],
)
def test_pixels_equal_the_transform_bit_for_bit(io, mode, size):
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    expected = io._transform(image).numpy()
    got = io.pixels(image)
    assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(got, expected)
