"""A model built with force_image_size / force_quick_gelu is saved with that architecture."""

from __future__ import annotations

import torch

from trainer.backbones import create_clip, save_open_clip


def test_forced_image_size_is_recorded_and_reloads(tmp_path):
    bundle = create_clip("diva-tiny-vit", force_image_size=48, force_quick_gelu=True)
    assert bundle.model_cfg["vision_cfg"]["image_size"] == 48
    assert bundle.model_cfg["quick_gelu"] is True
    assert bundle.image_size == 48
    again = create_clip(str(save_open_clip(bundle, tmp_path)))
    assert again.image_size == 48
    pixels = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(again.model.encode_image(pixels), bundle.model.encode_image(pixels))
    # The registered config itself is untouched.
    assert create_clip("diva-tiny-vit").model_cfg["vision_cfg"]["image_size"] == 32
