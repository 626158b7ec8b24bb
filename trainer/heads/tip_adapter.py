"""Tip-Adapter (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP", ECCV 2022).

The support set itself is the classifier: a cache whose keys are the unit image features and
whose values are one-hot labels. A query's adapter logits are its affinities to every key,
sharpened by ``beta``, summed per class:

    A = exp(-beta * (1 - f @ keys^T)) @ values

Unlike GDA it assumes nothing about class shape (a class may be several clusters), at the cost
of storing every example and a query cost linear in the shots. ``beta`` and ``alpha`` are chosen
by the same cross-validation as GDA's shrinkage.
"""

from __future__ import annotations

import numpy as np

BETAS: tuple[float, ...] = (1.0, 2.0, 3.5, 5.5, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0)
"""Sharpness values tried by cross-validation (the paper's ImageNet default is 5.5; small
encoders whose images all look alike, like the lab's, want much sharper ones)."""
DEFAULT_BETA = 5.5


def fit_tip_adapter(features: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """``{"keys": [N, D], "values": [N, C]}``: the cache, nothing fitted."""
    values = np.zeros((len(targets), num_classes), dtype=np.float32)
    values[np.arange(len(targets)), targets] = 1.0
    return {"keys": np.asarray(features, dtype=np.float32), "values": values}


def tip_logits(tensors: dict[str, np.ndarray], features: np.ndarray, beta: float) -> np.ndarray:
    """[N, C] cache affinities of unit features."""
    affinity = np.exp(-beta * (1.0 - features @ tensors["keys"].T))
    return affinity @ tensors["values"]
