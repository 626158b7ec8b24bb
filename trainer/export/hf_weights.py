"""What the Hugging Face converters share: their error, and a weight source that drops nothing.

Its own module so that the CLIP converter (:mod:`trainer.export.hf`) and the SigLIP one
(:mod:`trainer.export.hf_siglip`) both build on it while only the first imports the second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class HfExportError(ValueError):
    """The model cannot be expressed as a transformers CLIP without changing what it computes."""


class WeightSource:
    """A model's tensors, handed out by key for a key-renaming conversion. A missing key, and (at
    :meth:`check_all_used`) a tensor no rule took, raise :class:`HfExportError`: no weight is
    ever dropped silently."""

    def __init__(self, architecture: str, tensors: dict[str, torch.Tensor]) -> None:
        self.architecture = architecture
        self.tensors = tensors
        self.used: set[str] = set()

    def take(self, key: str) -> torch.Tensor:
        if key not in self.tensors:
            raise HfExportError(f"{self.architecture}: expected weight {key!r} is missing")
        self.used.add(key)
        return self.tensors[key]

    def check_all_used(self, target: str) -> None:
        left = sorted(set(self.tensors) - self.used)
        if left:
            raise HfExportError(
                f"{self.architecture}: weights with no {target} counterpart: {', '.join(left[:8])}"
            )
