"""Helpers shared by the export tests (importable by name: tests/export is on sys.path)."""

from __future__ import annotations

from pathlib import Path


def write_registry_model(root: Path, bundle, model_id: str = "tiny-clip") -> Path:
    """``<root>/<model_id>`` with manifest + open_clip/, as a finished job leaves it."""
    from trainer.artifacts import ModelArtifact, ModelManifest
    from trainer.backbones.factory import save_open_clip

    artifact = ModelArtifact.in_registry(root, model_id)
    save_open_clip(bundle, artifact.open_clip_dir)
    artifact.write_manifest(
        ModelManifest(
            id=model_id,
            architecture=bundle.architecture,
            embed_dim=bundle.embed_dim,
            image_size=bundle.image_size,
            patch_size=8,
            mean=bundle.mean,
            std=bundle.std,
            context_length=bundle.context_length,
        )
    )
    return artifact.root
