"""Token access for open_clip vision towers through their public ``forward_intermediates`` API.

DIVA's public code overwrote files inside the installed ``clip``/``open_clip``/``timm`` packages to
get patch tokens. Both open_clip's own ViT and its timm adapter expose ``forward_intermediates``:
with the last block, the final norm applied and the prefix (CLS) tokens split off, it gives the
same tokens the pooled embedding is made from. The patch tokens are then mapped into the joint
embedding space with the tower's own projection, so pooled and patch tokens live in one space.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class VisionTokens(NamedTuple):
    """Final-normed, projected tokens: ``pooled`` [B, D] (CLS or MAP) and ``patches`` [B, N, D]."""

    pooled: torch.Tensor
    patches: torch.Tensor


class UnsupportedTowerError(TypeError):
    """A vision tower whose tokens cannot be read through a public API."""


class TokenTower(nn.Module):
    """Wrap a CLIP's ``visual`` module so that ``forward(pixels)`` returns :class:`VisionTokens`.

    The wrapper owns no parameters of its own; training it trains the wrapped tower in place, so
    the CLIP that holds the tower can be saved as usual afterwards.
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        if not hasattr(visual, "forward_intermediates"):
            raise UnsupportedTowerError(
                f"{type(visual).__name__} has no forward_intermediates(); token access supports "
                "open_clip VisionTransformer and TimmModel towers"
            )
        if getattr(visual, "attn_pool", None) is not None:
            raise UnsupportedTowerError("towers with an attentional pooler (CoCa) are not supported")
        self.visual = visual
        self.is_timm = hasattr(visual, "trunk")

    @property
    def embed_dim(self) -> int:
        """Width of the projected tokens (the CLIP joint embedding dimension)."""
        if self.is_timm:
            head = self.visual.head
            if hasattr(head, "proj"):
                return int(head.proj.out_features)
            if hasattr(head, "mlp"):
                return int(head.mlp.fc2.out_features)
            return int(self.visual.trunk.num_features)
        proj = self.visual.proj
        return int(proj.shape[1]) if proj is not None else int(self.visual.ln_post.normalized_shape[0])

    def num_patches(self, image_size: int) -> int:
        patch = self._patch_size()
        return (image_size // patch) ** 2

    def _patch_size(self) -> int:
        size = self.visual.trunk.patch_embed.patch_size if self.is_timm else self.visual.patch_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def forward(self, pixels: torch.Tensor) -> VisionTokens:
        if self.is_timm:
            return self._timm_tokens(pixels)
        return self._open_clip_tokens(pixels)

    def _open_clip_tokens(self, pixels: torch.Tensor) -> VisionTokens:
        out = self.visual.forward_intermediates(
            pixels, indices=1, normalize_intermediates=True, output_fmt="NLC", output_extra_tokens=True
        )
        patches = out["image_intermediates"][-1]
        if self.visual.proj is not None:
            patches = patches @ self.visual.proj
        return VisionTokens(out["image_features"], patches)

    def _timm_tokens(self, pixels: torch.Tensor) -> VisionTokens:
        out = self.visual.forward_intermediates(
            pixels, indices=1, normalize_intermediates=True, output_fmt="NLC"
        )
        patches = out["image_intermediates"][-1]
        head = self.visual.head
        if "pool" in dict(head.named_children()):
            raise UnsupportedTowerError("timm towers with an adapter pooling head are not supported")
        return VisionTokens(out["image_features"], head(patches))
