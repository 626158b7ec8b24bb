"""CLIP towers as data: open_clip model configs, one factory, token access without patching."""

from trainer.backbones.factory import (
    ClipBundle,
    UnknownBackboneError,
    create_clip,
    list_architectures,
    manifest_for,
    save_open_clip,
    write_model_folder,
)
from trainer.backbones.tokens import TokenTower, UnsupportedTowerError, VisionTokens

__all__ = [
    "ClipBundle",
    "TokenTower",
    "UnknownBackboneError",
    "UnsupportedTowerError",
    "VisionTokens",
    "create_clip",
    "list_architectures",
    "manifest_for",
    "save_open_clip",
    "write_model_folder",
]
