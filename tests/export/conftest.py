"""Fixtures of the export tests: one tiny CLIP (random weights, built from a project config)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle():
    """``diva-tiny-vit`` with a non-trivial logit scale; shared read-only by the export tests."""
    import torch

    from trainer.backbones.factory import create_clip

    torch.manual_seed(0)
    bundle = create_clip("diva-tiny-vit")
    with torch.no_grad():
        bundle.model.logit_scale.fill_(2.5)
    return bundle


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Path:
    """A registry root holding ``tiny-clip`` (manifest + open_clip/), as a finished job leaves it."""
    from trainer.artifacts import ModelArtifact, ModelManifest
    from trainer.backbones.factory import save_open_clip

    root = tmp_path_factory.mktemp("registry")
    artifact = ModelArtifact.in_registry(root, "tiny-clip")
    save_open_clip(tiny_bundle, artifact.open_clip_dir)
    artifact.write_manifest(
        ModelManifest(
            id="tiny-clip",
            architecture=tiny_bundle.architecture,
            embed_dim=tiny_bundle.embed_dim,
            image_size=tiny_bundle.image_size,
            patch_size=8,
            mean=tiny_bundle.mean,
            std=tiny_bundle.std,
            context_length=tiny_bundle.context_length,
        )
    )
    return root
