"""A tiny world shared by the training tests: a tiny SD folder, a tiny CLIP folder, a few images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.backbones import create_clip, save_open_clip
from trainer.feedback import build_tiny_diffusion
from trainer.recipes import load_train_config


def write_images(folder: Path, count: int = 8, seed: int = 0) -> Path:
    """Flat-coloured images with one bright bar at a different place each (detail to see)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        array = np.zeros((40, 48, 3), np.uint8)
        array[:] = rng.integers(0, 255, 3)
        array[8 + i % 3 * 8 : 20 + i % 3 * 8, 4 + i * 5 : 12 + i * 5] = 255
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-world")
    torch.manual_seed(0)
    base = save_open_clip(create_clip("diva-tiny-vit"), root / "base-clip")
    return {
        "diffusion": build_tiny_diffusion(root / "tiny-sd"),
        "base": base,
        "images": write_images(root / "images"),
        "root": root,
    }


def fixed_batch(setup, images: int = 4, seed: int = 7) -> dict[str, torch.Tensor]:
    """One deterministic training batch shaped for ``setup`` (pixels, patches, timesteps, noise)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "pixels": torch.rand(images, 3, 16, 16, generator=generator),
        "patches": torch.randint(0, setup.num_patches, (images, setup.random_patches), generator=generator),
        "timesteps": torch.randint(0, 1000, (images, 2), generator=generator),
        "noise": torch.randn(images, 2, *setup.latent_shape, generator=generator),
    }


@pytest.fixture
def make_batch():
    """:func:`fixed_batch`, for tests that run the loss by hand."""
    return fixed_batch


@pytest.fixture
def image_writer():
    """:func:`write_images`, for tests that need their own image folder."""
    return write_images


@pytest.fixture
def make_recipe(tiny_world, tmp_path):
    """Build a small valid recipe; keyword overrides use dotted keys via a dict."""

    def make(overrides: dict | None = None, **kwargs):
        values = {
            "model": str(tiny_world["base"]),
            "diffusion": str(tiny_world["diffusion"]),
            "data.path": str(tiny_world["images"]),
            "steps": 6,
            "batch_size": 4,
            "crop_size": 16,
            "checkpoint_every": 5,
            "optim.lr": 0.05,
            "output_dir": str(tmp_path / "run"),
            "device": "cpu",
        }
        values.update(kwargs)
        values.update(overrides or {})
        return load_train_config(None, values)

    return make
