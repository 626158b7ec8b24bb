"""Tiny diffusers folders load through the real path; the loss goes through the scheduler."""

from __future__ import annotations

import pytest
import torch

from trainer.feedback import DiffusionFolderError, FrozenDiffusion, build_tiny_diffusion


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    return build_tiny_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")


def test_tiny_folder_loads_frozen_and_encodes_prompt(tiny_sd):
    feedback = FrozenDiffusion.load(tiny_sd)
    assert feedback.prompt_embeds.shape == (1, 77, 32)
    assert feedback.cross_attention_dim == 32
    assert not any(p.requires_grad for p in feedback.unet.parameters())
    assert not any(p.requires_grad for p in feedback.vae.parameters())
    assert not feedback.unet.training
    z0 = feedback.latents(torch.rand(2, 3, 16, 16))
    assert z0.shape == (2, 4, 8, 8)


def test_two_builds_are_identical(tmp_path, tiny_sd):
    again = build_tiny_diffusion(tmp_path / "again")
    first = FrozenDiffusion.load(tiny_sd)
    second = FrozenDiffusion.load(again)
    assert torch.equal(first.prompt_embeds, second.prompt_embeds)
    for a, b in zip(first.unet.parameters(), second.unet.parameters()):
        assert torch.equal(a, b)


def test_pixel_space_without_vae(tmp_path):
    folder = build_tiny_diffusion(tmp_path / "pixel", with_vae=False, sample_size=8)
    feedback = FrozenDiffusion.load(folder)
    assert feedback.vae is None
    z0 = feedback.latents(torch.ones(1, 3, 32, 32))
    assert z0.shape == (1, 3, 8, 8)
    assert torch.allclose(z0, torch.ones_like(z0))  # white pixels map to +1


def test_space_to_depth_keeps_every_pixel_of_a_larger_image() -> None:
    """A 12-channel pixel-space UNet reads 2x2 blocks: z0 of a 2*sample_size image is lossless."""
    from types import SimpleNamespace

    from trainer.feedback.diffusion import pixel_latents, space_to_depth_factor

    config = SimpleNamespace(in_channels=12, sample_size=8)
    assert space_to_depth_factor(config) == 2
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    z0 = pixel_latents(image, config)
    assert z0.shape == (2, 12, 8, 8)
    assert torch.equal(torch.nn.functional.pixel_shuffle(z0, 2), image)
    assert pixel_latents(torch.rand(1, 3, 64, 64), config).shape == (1, 12, 8, 8)  # resized to 16 first
    assert pixel_latents(image, SimpleNamespace(in_channels=3, sample_size=16)).shape == (2, 3, 16, 16)
    with pytest.raises(DiffusionFolderError, match="3 f\\^2"):
        space_to_depth_factor(SimpleNamespace(in_channels=4, sample_size=8))


def test_draws_have_equal_weight_and_noise_through_scheduler(tiny_sd):
    feedback = FrozenDiffusion.load(tiny_sd)
    z0 = torch.randn(2, 4, 8, 8)
    cond = torch.randn(2, 77, 32)
    t = torch.tensor([[10, 900], [500, 1]])
    noise = torch.randn(2, 2, 4, 8, 8)
    per, _ = feedback.loss(z0, cond, t, noise)
    # Each draw alone gives the same number as in the batch of draws.
    for draw in range(2):
        alone, _ = feedback.loss(z0, cond, t[:, draw : draw + 1], noise[:, draw : draw + 1])
        assert torch.allclose(alone[:, 0], per[:, draw], atol=1e-5)


def test_missing_folder_and_parts_are_named(tmp_path):
    with pytest.raises(DiffusionFolderError, match="does not exist"):
        FrozenDiffusion.load(tmp_path / "nope")
    (tmp_path / "half" / "unet").mkdir(parents=True)
    with pytest.raises(DiffusionFolderError, match="scheduler/"):
        FrozenDiffusion.load(tmp_path / "half")
