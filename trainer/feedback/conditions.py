"""Condition builders: how vision tokens become the UNet's cross-attention input.

A condition is data (``{kind: cls_plus_random, n: 76}``) resolved by a small name -> function
table; a new mechanism is one config class, one builder function and one test. Every builder
selects tokens (in the CLIP joint space), the trainable projector maps them to the UNet's
cross-attention width, and the frozen prompt embedding is added either token by token (OpenAI
recipe, DCR) or as its mean vector broadcast over the visual tokens (MetaCLIP/DFN/SigLIP recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, Union

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from trainer.backbones.tokens import VisionTokens

Combine = Literal["tokenwise", "mean"]


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClsPlusRandom(_Condition):
    """CLS + ``n`` patch tokens drawn with replacement every forward (or a ``fraction`` of them)."""

    kind: Literal["cls_plus_random"] = "cls_plus_random"
    n: int | None = Field(76, ge=1)
    fraction: float | None = Field(None, gt=0, le=1, description="Overrides n: floor(fraction*N).")
    combine: Combine = "tokenwise"

    @model_validator(mode="after")
    def _count(self) -> ClsPlusRandom:
        if self.n is None and self.fraction is None:
            raise ValueError("cls_plus_random needs n (a token count) or fraction (of the patches)")
        return self


class ClsPlusAll(_Condition):
    """CLS + every patch token (MetaCLIP / DFN @224)."""

    kind: Literal["cls_plus_all"] = "cls_plus_all"
    combine: Combine = "mean"


class PooledPlusAvgpool(_Condition):
    """Pooled (MAP) token + 1-D average pool of the patch sequence with ``window`` (SigLIP)."""

    kind: Literal["pooled_plus_avgpool"] = "pooled_plus_avgpool"
    window: int = Field(6, ge=1)
    combine: Combine = "mean"


class ClsOnly(_Condition):
    """The global token alone, broadcast to the prompt length (GenHancer / DCR)."""

    kind: Literal["cls_only"] = "cls_only"
    combine: Combine = "tokenwise"
    normalize: bool = Field(
        False,
        description="L2-normalise the token and scale it to sqrt(width): only its direction reaches the "
        "UNet, as only the direction counts for the CLIP's similarities (feedback cannot hide in the norm).",
    )
    center: bool = Field(
        False,
        description="Subtract the batch mean first: the condition carries what tells an image from the "
        "others, and the gradient that reaches the tower has no part common to the whole batch.",
    )


ConditionConfig = Annotated[
    Union[ClsPlusRandom, ClsPlusAll, PooledPlusAvgpool, ClsOnly], Field(discriminator="kind")
]


def random_count(config: ConditionConfig, num_patches: int) -> int:
    """How many random patch indices per image the condition needs (0: deterministic)."""
    if isinstance(config, ClsPlusRandom):
        if config.fraction is not None:
            return max(1, int(config.fraction * num_patches))
        return int(config.n or 0)
    return 0


def condition_length(config: ConditionConfig, num_patches: int, prompt_length: int) -> int:
    """Number of condition tokens the UNet sees for a tower with ``num_patches`` patches."""
    if isinstance(config, ClsPlusRandom):
        return 1 + random_count(config, num_patches)
    if isinstance(config, ClsPlusAll):
        return 1 + num_patches
    if isinstance(config, PooledPlusAvgpool):
        return 1 + num_patches // config.window
    if isinstance(config, ClsOnly):
        return prompt_length
    raise TypeError(f"unknown condition {config!r}")


def _cls_plus_random(config, tokens: VisionTokens, indices, length: int) -> torch.Tensor:
    if indices is None:
        raise ValueError("cls_plus_random needs per-image random patch indices")
    picked = torch.gather(
        tokens.patches,
        1,
        indices.to(tokens.patches.device)[..., None].expand(-1, -1, tokens.patches.shape[-1]),
    )
    return torch.cat([tokens.pooled[:, None], picked], dim=1)


def _cls_plus_all(config, tokens: VisionTokens, indices, length: int) -> torch.Tensor:
    return torch.cat([tokens.pooled[:, None], tokens.patches], dim=1)


def _pooled_plus_avgpool(config, tokens: VisionTokens, indices, length: int) -> torch.Tensor:
    pooled = F.avg_pool1d(tokens.patches.transpose(1, 2), config.window, config.window).transpose(1, 2)
    return torch.cat([tokens.pooled[:, None], pooled], dim=1)


def _cls_only(config, tokens: VisionTokens, indices, length: int) -> torch.Tensor:
    pooled = tokens.pooled
    if config.center:
        pooled = pooled - pooled.mean(dim=0, keepdim=True)
    if config.normalize:
        pooled = unit_scaled(pooled)
    return pooled[:, None].expand(-1, length, -1)


def unit_scaled(embeds: torch.Tensor) -> torch.Tensor:
    """Direction only, at norm sqrt(width) (the scale of a LayerNorm-ed token): ``normalize: true``."""
    return F.normalize(embeds, dim=-1) * embeds.shape[-1] ** 0.5


SELECTORS: dict[str, Callable[..., torch.Tensor]] = {
    "cls_plus_random": _cls_plus_random,
    "cls_plus_all": _cls_plus_all,
    "pooled_plus_avgpool": _pooled_plus_avgpool,
    "cls_only": _cls_only,
}


def build_projector(kind: str, in_dim: int, out_dim: int, init: str = "random") -> nn.Module:
    """The new trainable map from CLIP space to cross-attention width.

    ``linear`` is DIVA's ``Linear(D -> 1024)``; ``mlp`` is GenHancer's LN-Linear-GELU-Linear.
    ``init="identity"`` starts a square ``linear`` map at the identity: for a diffusion model
    whose condition already lives in this CLIP's joint space (its text encoder is this CLIP's
    text tower), so the tower's gradient arrives along the directions the text tower uses instead
    of through a random rotation.
    """
    if init not in ("random", "identity"):
        raise ValueError(f"unknown projector init {init!r}: choose 'random' or 'identity'")
    if init == "identity":
        if kind != "linear" or in_dim != out_dim:
            raise ValueError(
                "projector_init identity needs projector linear and equal widths, "
                f"got {kind} {in_dim} -> {out_dim}"
            )
        layer = nn.Linear(in_dim, out_dim)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(out_dim))
            layer.bias.zero_()
        return layer
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
        )
    raise ValueError(f"unknown projector {kind!r}: choose 'linear' or 'mlp'")


class ConditionBuilder(nn.Module):
    """Tokens -> projected condition + frozen prompt embedding ([B, L, C])."""

    def __init__(self, config: ConditionConfig, projector: nn.Module, prompt_embeds: torch.Tensor) -> None:
        super().__init__()
        self.config = config
        self.projector = projector
        # Frozen and rebuilt from the diffusion folder every run, so not part of checkpoints.
        self.register_buffer("prompt_embeds", prompt_embeds.detach().clone(), persistent=False)

    @property
    def prompt_length(self) -> int:
        return int(self.prompt_embeds.shape[1])

    def check_shapes(self, num_patches: int) -> int:
        """Raise a clear error if a token-wise sum cannot line up; return the condition length."""
        length = condition_length(self.config, num_patches, self.prompt_length)
        if self.config.combine == "tokenwise" and length != self.prompt_length:
            raise ValueError(
                f"condition {self.config.kind} gives {length} tokens but the prompt embedding has "
                f"{self.prompt_length}: token-wise addition needs equal lengths (use combine: mean, "
                f"or n: {self.prompt_length - 1})"
            )
        return length

    def forward(self, tokens: VisionTokens, indices: torch.Tensor | None = None) -> torch.Tensor:
        selected = SELECTORS[self.config.kind](self.config, tokens, indices, self.prompt_length)
        projected = self.projector(selected)
        prompt = self.prompt_embeds.to(projected.dtype)
        if self.config.combine == "tokenwise":
            if projected.shape[1] != prompt.shape[1]:
                raise ValueError(f"{projected.shape[1]} condition tokens vs a {prompt.shape[1]}-token prompt")
            return projected + prompt
        return projected + prompt.mean(dim=1, keepdim=True)
