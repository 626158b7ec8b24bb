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


def test_write_model_folder_takes_shape_fields_from_the_bundle(tmp_path):
    from trainer.artifacts import InvalidModelId, ModelArtifact
    from trainer.backbones import manifest_for, write_model_folder

    bundle = create_clip("diva-tiny-vit")
    artifact = write_model_folder(bundle, tmp_path, "tiny", patch_size=8, recipe="test")
    manifest = ModelArtifact(tmp_path / "tiny").read_manifest()
    assert artifact.root == tmp_path / "tiny"
    assert (manifest.id, manifest.architecture, manifest.patch_size, manifest.recipe) == (
        "tiny", "diva-tiny-vit", 8, "test",
    )  # fmt: skip
    assert (manifest.embed_dim, manifest.image_size, manifest.context_length) == (32, 32, 16)
    assert (manifest.mean, manifest.std) == (bundle.mean, bundle.std)
    assert set(manifest.checksums) == {"open_clip/open_clip_model.safetensors"}
    again = create_clip(str(artifact.root))
    assert manifest_for(again, "tiny").model_dump(exclude={"created"}) == manifest_for(
        bundle, "tiny"
    ).model_dump(exclude={"created"})
    assert not write_model_folder(bundle, tmp_path, "plain", checksum=False).read_manifest().checksums
    with pytest.raises(InvalidModelId):
        write_model_folder(bundle, tmp_path, "../escape")
