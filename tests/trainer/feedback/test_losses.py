"""DCR's InfoNCE on predicted noise: right preferences, gradients, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.feedback.losses import infonce_on_noise


def test_aligned_predictions_score_better_than_confused_ones():
    torch.manual_seed(0)
    noise = torch.randn(4, 2, 3, 8, 8)
    aligned = infonce_on_noise(noise, noise, noise, temperature=0.1)
    shuffled = infonce_on_noise(noise, noise[[1, 2, 3, 0]], noise[[1, 2, 3, 0]], temperature=0.1)
    assert aligned < 0.01 < shuffled
    # All directions identical: positives and negatives tie, loss = log(1 + (B-1)/2).
    same = torch.ones(4, 1, 3, 2, 2)
    assert infonce_on_noise(same, same, same).item() == pytest.approx(math.log(1 + 3 / 2), abs=1e-5)


def test_gradients_reach_both_views_and_small_batches_are_refused():
    pred = torch.randn(3, 2, 4, requires_grad=True)
    view = torch.randn(3, 2, 4, requires_grad=True)
    infonce_on_noise(pred, view, torch.randn(3, 2, 4)).backward()
    assert pred.grad.abs().sum() > 0 and view.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 2 images"):
        infonce_on_noise(torch.randn(1, 1, 4), torch.randn(1, 1, 4), torch.randn(1, 1, 4))
