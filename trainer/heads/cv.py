"""Choosing a head's hyper-parameters on its own support set, because users have no validation split.

The GDA paper tunes the ensemble weight ``alpha`` on a held-out split; a user with a handful of
labelled images has none to spare. Instead every candidate is scored by stratified k-fold
cross-validation on the support set: each fold's adapter is fitted on the other folds and scored
on the fold it never saw. The winner has the best out-of-fold accuracy; ties (common with a few
shots) go to the lowest out-of-fold cross-entropy, so ``alpha`` still acts as a calibrated
temperature when accuracy cannot tell candidates apart (e.g. a pure adapter, ``text_weight`` 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.round(10 ** np.linspace(-2, 2, 17), 4))
"""Ensemble weights tried: 0.01 .. 100, log-spaced (4 per decade)."""
MAX_FOLDS = 5


@dataclass(frozen=True)
class Choice:
    """The chosen hyper-parameter of the adapter, ``alpha``, and their out-of-fold scores."""

    param: float
    alpha: float
    accuracy: float
    cross_entropy: float
    folds: int


def stratified_folds(targets: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs; every class appears in every held-out fold.

    ``k`` is the smallest class count, capped at :data:`MAX_FOLDS`: with two shots per class
    this is leave-one-shot-out per class, with many it is the usual 5-fold.
    """
    counts = np.bincount(targets)
    k = int(min(MAX_FOLDS, counts[counts > 0].min()))
    if k < 2:
        raise ValueError("cross-validation needs at least two examples of every class")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(targets), dtype=np.int64)
    for cls in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(targets == cls))
        fold_of[members] = np.arange(len(members)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def _scores(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    accuracy = float((logits.argmax(axis=1) == targets).mean())
    return accuracy, float(-log_probs[np.arange(len(targets)), targets].mean())


def select(
    targets: np.ndarray,
    text_logits: np.ndarray,
    out_of_fold: Callable[[float, np.ndarray, np.ndarray], np.ndarray],
    params: Sequence[float],
    alphas: Sequence[float] = ALPHAS,
) -> Choice:
    """The best (param, alpha) by out-of-fold accuracy, then cross-entropy.

    ``text_logits`` [N, C] are the zero-shot logits already multiplied by the text weight (zeros
    for a pure adapter); ``out_of_fold(param, train, held_out)`` returns the adapter logits of
    the held-out rows for an adapter fitted on the train rows.
    """
    folds = stratified_folds(targets)
    best: Choice | None = None
    for param in params:
        adapter = np.zeros_like(text_logits)
        for train, held_out in folds:
            adapter[held_out] = out_of_fold(param, train, held_out)
        for alpha in alphas:
            accuracy, loss = _scores(text_logits + alpha * adapter, targets)
            if not np.isfinite(loss):
                continue
            if best is None or (accuracy, -loss) > (best.accuracy, -best.cross_entropy):
                best = Choice(float(param), float(alpha), accuracy, loss, len(folds))
    if best is None:
        raise ValueError("no hyper-parameter gave finite logits on the support set")
    return best
