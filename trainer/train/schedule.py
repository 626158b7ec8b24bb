"""The learning rate as a pure function of the step (nanoGPT style): resume needs only the step."""

from __future__ import annotations

import math


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    """DIVA's 0.5% warm-up, at least one step when a fraction is set."""
    return max(1, round(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0


def lr_at(
    step: int, *, total_steps: int, base_lr: float, warmup_fraction: float, min_lr: float = 0.0
) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to ``min_lr`` at ``total_steps``.

    ``step`` counts optimiser steps from 0 (the LR used *for* that step).
    """
    warm = warmup_steps(total_steps, warmup_fraction)
    if step < warm:
        return base_lr * (step + 1) / warm
    span = max(1, total_steps - warm)
    progress = min(1.0, (step - warm) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
