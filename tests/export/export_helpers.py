"""Helpers shared by the export tests (importable by name: tests/export is on sys.path)."""

from __future__ import annotations

from pathlib import Path


def write_registry_model(root: Path, bundle, model_id: str = "tiny-clip") -> Path:
    """``<root>/<model_id>`` with manifest + open_clip/, as a finished job leaves it."""
    from trainer.backbones.factory import write_model_folder

    return write_model_folder(bundle, root, model_id, patch_size=8).root
