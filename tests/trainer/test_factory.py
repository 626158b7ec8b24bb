"""The backbone factory: round trip through the open_clip folder format, clear errors."""

from __future__ import annotations

import open_clip
import pytest
import torch

from trainer.backbones import UnknownBackboneError, create_clip, save_open_clip


def test_open_clip_folder_round_trip(tmp_path):
    bundle = create_clip("diva-tiny-vit")
    save_open_clip(bundle, tmp_path)
    again = create_clip(str(tmp_path))
    pixels = torch.randn(2, 3, bundle.image_size, bundle.image_size)
    with torch.no_grad():
        assert torch.equal(bundle.model.encode_image(pixels), again.model.encode_image(pixels))
    assert again.preprocess_cfg["size"] == bundle.preprocess_cfg["size"]
    # open_clip's own loader reads the same folder.
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path}")
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode_image(pixels), bundle.model.encode_image(pixels))


def test_unknown_backbone_names_choices():
    with pytest.raises(UnknownBackboneError, match="unknown backbone 'ViT-Nope'"):
        create_clip("ViT-Nope")


def test_unknown_pretrained_tag_lists_tags():
    with pytest.raises(UnknownBackboneError, match="openai"):
        create_clip("ViT-B-32", pretrained="not-a-tag")
