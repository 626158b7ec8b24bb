"""The publish gate: a post-trained encoder ships only if it kept its zero-shot ability.

And the fine-grained check beside it: post-training exists to raise MMVP, so a job whose MMVP
fell below its base by more than a tolerance is flagged (in its report and its job), and blocked
when the site asks for it. Pure arithmetic on two numbers, importable without torch (the worker
calls both after evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_TOLERANCE = 1.0
DEFAULT_MMVP_TOLERANCE = 2.0


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    base_top1: float
    post_top1: float
    tolerance: float

    @property
    def drop(self) -> float:
        """Points of zero-shot top-1 lost (negative when the post-trained model is better)."""
        return self.base_top1 - self.post_top1


def zero_shot_gate(base_top1: float, post_top1: float, tolerance: float = DEFAULT_TOLERANCE) -> GateDecision:
    """Pass when ``post_top1 >= base_top1 - tolerance`` (points, 0..100); the reason says why."""
    for name, value in (("base_top1", base_top1), ("post_top1", post_top1)):
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 100.0:
            raise ValueError(f"{name} must be a zero-shot accuracy in points (0..100), got {value!r}")
    if not isinstance(tolerance, (int, float)) or math.isnan(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number of points, got {tolerance!r}")
    drop = base_top1 - post_top1
    change = post_top1 - base_top1
    numbers = (
        f"zero-shot top-1 {base_top1:.2f} -> {post_top1:.2f} ({change:+.2f} points, tolerance {tolerance:g})"
    )
    if drop <= tolerance + 1e-9:
        return GateDecision(True, f"passed: {numbers}", float(base_top1), float(post_top1), float(tolerance))
    return GateDecision(
        False,
        f"failed: {numbers}; the post-trained encoder lost {drop:.2f} points, "
        f"more than the allowed {tolerance:g}",
        float(base_top1),
        float(post_top1),
        float(tolerance),
    )


@dataclass(frozen=True)
class FineGrainedCheck:
    regressed: bool
    reason: str
    base_mmvp: float
    post_mmvp: float
    tolerance: float


def fine_grained_check(
    base_mmvp: float, post_mmvp: float, tolerance: float = DEFAULT_MMVP_TOLERANCE
) -> FineGrainedCheck:
    """Flag a post-trained encoder whose MMVP average fell more than ``tolerance`` points."""
    for name, value in (("base_mmvp", base_mmvp), ("post_mmvp", post_mmvp)):
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 100.0:
            raise ValueError(f"{name} must be an MMVP average in points (0..100), got {value!r}")
    if not isinstance(tolerance, (int, float)) or math.isnan(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number of points, got {tolerance!r}")
    change = post_mmvp - base_mmvp
    numbers = f"MMVP {base_mmvp:.1f} -> {post_mmvp:.1f} ({change:+.1f} points, tolerance {tolerance:g})"
    regressed = -change > tolerance + 1e-9
    reason = (
        f"regressed: {numbers}; the encoder sees fine detail worse than its base"
        if regressed
        else f"held: {numbers}"
    )
    return FineGrainedCheck(regressed, reason, float(base_mmvp), float(post_mmvp), float(tolerance))
