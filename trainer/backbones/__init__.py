"""CLIP towers as data: open_clip model configs, one factory, token access without patching."""

from trainer.backbones.factory import (
    ClipBundle,
    UnknownBackboneError,
    create_clip,
    list_architectures,
    save_open_clip,
)

__all__ = ["ClipBundle", "UnknownBackboneError", "create_clip", "list_architectures", "save_open_clip"]
