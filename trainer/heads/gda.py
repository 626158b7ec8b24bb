"""Gaussian discriminant analysis on CLIP features (Wang et al., "A Hard-to-Beat Baseline for
Training-free CLIP-based Adaptation", ICLR 2024).

Each class is a Gaussian around the mean of its L2-normalised image features, all classes
sharing one covariance. Bayes' rule then gives a *linear* classifier with no training loop:

    W = mu^T inv,   b = log prior - diag(mu^T inv mu) / 2

A few shots cannot estimate a d x d covariance, so it is shrunk towards the identity. The paper
uses ``inv = d * pinv((N - 1) S + tr(S) I)``; here the identity term is ``shrinkage * tr(S) I``
(``shrinkage`` 1 is the paper's) and the shrinkage is chosen by cross-validation, because the
right amount depends on the encoder (the lab's 96-dim features want less than the paper's).
Since ``(N - 1)`` scales the sample covariance, the ridge's share falls as shots grow.
"""

from __future__ import annotations

import numpy as np

SHRINKAGES: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
"""Shrinkage multipliers tried by cross-validation (1.0 = the paper's estimator)."""
DEFAULT_SHRINKAGE = 1.0


def class_means(features: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, D]; a class absent from ``targets`` (a CV fold) gets a zero mean, never chosen by priors."""
    sums = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(sums, targets, features)
    counts = np.bincount(targets, minlength=num_classes)
    return sums / np.maximum(counts, 1)[:, None]


def _log_prior(targets: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def fit_gda(
    features: np.ndarray,
    targets: np.ndarray,
    num_classes: int,
    shrinkage: float = DEFAULT_SHRINKAGE,
    one_shot_precision: float = 100.0,
) -> dict[str, np.ndarray]:
    """``{"weight": [C, D], "bias": [C]}`` from unit features and integer targets.

    With one shot per class there is no within-class spread to estimate (S = 0): the covariance
    is then isotropic with precision ``one_shot_precision`` (the service passes the model's logit
    scale), which makes the head a prototype classifier on the zero-shot logits' scale.
    """
    features = np.asarray(features, dtype=np.float64)
    mu = class_means(features, targets, num_classes)
    centred = features - mu[targets]
    n, dim = features.shape
    scatter = centred.T @ centred  # (N - 1) S
    trace = float(np.trace(scatter)) / max(n - 1, 1)
    if trace <= 1e-12:
        precision = np.eye(dim) * one_shot_precision
    else:
        values, vectors = np.linalg.eigh(scatter)
        values = np.maximum(values, 0.0) + shrinkage * trace
        precision = dim * (vectors / values) @ vectors.T
    weight = mu @ precision
    bias = _log_prior(targets, num_classes) - 0.5 * np.einsum("cd,cd->c", weight, mu)
    bias = np.where(np.isfinite(bias), bias, -1e4)  # a class missing from a CV fold never wins
    return {"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)}


def gda_logits(tensors: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """[N, C] discriminant scores of unit features."""
    return features @ tensors["weight"].T + tensors["bias"]
