"""Losses on the frozen UNet's predictions, beyond DIVA's plain epsilon MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce_on_noise(
    pred: torch.Tensor, pred_aug: torch.Tensor, noise: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """DCR's contrastive loss on predicted noise, averaged over images and draws.

    ``pred``, ``pred_aug`` and ``noise`` are [B, N, ...]: the predictions for an image and for an
    augmented view of it (same timestep and noise), and the true noise. For image i the anchor is
    its own prediction; the positives are its view's prediction and the true noise; the negatives
    are the other images' predictions. Pure reconstruction lets the condition carry whatever makes
    denoising easy; this asks it to keep images apart too.
    """
    batch = pred.shape[0]
    if batch < 2:
        raise ValueError("infonce needs at least 2 images per batch (the others are the negatives)")
    anchor = F.normalize(pred.float().flatten(2), dim=-1).transpose(0, 1)  # [N, B, D]
    view = F.normalize(pred_aug.float().flatten(2), dim=-1).transpose(0, 1)
    target = F.normalize(noise.float().flatten(2), dim=-1).transpose(0, 1)
    positive_view = (anchor * view).sum(-1) / temperature  # [N, B]
    positive_noise = (anchor * target).sum(-1) / temperature
    negatives = anchor @ anchor.transpose(1, 2) / temperature  # [N, B, B]
    eye = torch.eye(batch, dtype=torch.bool, device=pred.device)
    negatives = negatives.masked_fill(eye, float("-inf"))
    positives = torch.stack([positive_view, positive_noise], dim=-1)  # [N, B, 2]
    numerator = torch.logsumexp(positives, dim=-1)
    denominator = torch.logsumexp(torch.cat([positives, negatives], dim=-1), dim=-1)
    return (denominator - numerator).mean()
