"""Frozen diffusion feedback: diffusers parts, the loss through the scheduler, condition builders."""

from trainer.feedback.diffusion import (
    DEFAULT_PROMPT,
    DiffusionFolderError,
    FrozenDiffusion,
    check_diffusion_folder,
)
from trainer.feedback.tiny import build_tiny_diffusion

__all__ = [
    "DEFAULT_PROMPT",
    "DiffusionFolderError",
    "FrozenDiffusion",
    "build_tiny_diffusion",
    "check_diffusion_folder",
]
