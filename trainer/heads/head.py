"""A fitted few-shot head: plain data (a JSON config and a few tensors), fitted without training.

``logits = text_weight * logit_scale * f @ text^T + alpha * adapter(f)`` on unit image features
``f``: the zero-shot classifier built from the label names, plus a training-free adapter (GDA or
Tip-Adapter) fitted on the labelled shots. ``text_weight`` 0 drops the zero-shot term, so the
labels may be any strings (ids, not captions). A head is a folder::

    <dir>/head.json            HeadConfig (kind, labels, alpha, the adapter's parameter, scores)
    <dir>/tensors.safetensors  "text" [C, D] (when text_weight > 0) and the adapter's tensors

:meth:`Head.save_pretrained` / :meth:`Head.from_pretrained` round-trip it exactly, so a head
exported beside a tower loads anywhere numpy does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from trainer.heads import cv, gda, tip_adapter

Kind = Literal["gda", "tip_adapter"]
KINDS: tuple[str, ...] = ("gda", "tip_adapter")
CONFIG_FILE = "head.json"
TENSORS_FILE = "tensors.safetensors"
ONE_SHOT_ALPHA = 1.0
"""alpha when every class has one shot (nothing to cross-validate): the adapter weighs as much
as the zero-shot classifier, both on the text logit scale."""


class HeadFitError(ValueError):
    """The examples cannot make a head (too few classes, shots, mismatched shapes); says why."""


@dataclass
class HeadConfig:
    """Everything about a head except its tensors."""

    kind: str
    labels: list[str]
    alpha: float
    param: float  # GDA: shrinkage; Tip-Adapter: beta
    text_weight: float = 1.0
    logit_scale: float = 100.0
    shots: dict[str, int] = field(default_factory=dict)
    cv_accuracy: float | None = None
    cv_folds: int = 0
    model: str | None = None
    templates: list[str] = field(default_factory=list)

    @property
    def param_name(self) -> str:
        return "shrinkage" if self.kind == "gda" else "beta"


@dataclass
class Head:
    config: HeadConfig
    tensors: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def adapter_logits(self, features: np.ndarray) -> np.ndarray:
        if self.config.kind == "gda":
            return gda.gda_logits(self.tensors, features)
        return tip_adapter.tip_logits(self.tensors, features, self.config.param)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """[N, C] ensemble logits of image features (normalised here, as the head was fitted)."""
        f = _unit(np.asarray(features, dtype=np.float32))
        out = self.config.alpha * self.adapter_logits(f)
        if self.config.text_weight:
            out = out + self.config.text_weight * self.config.logit_scale * f @ self.tensors["text"].T
        return out

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = self.logits(features)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def save_pretrained(self, folder: Path | str) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.tensors.items()}
        save_file(tensors, str(folder / TENSORS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config.__dict__, indent=1) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: Path | str) -> Head:
        from safetensors.numpy import load_file

        folder = Path(folder)
        config = HeadConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        return cls(config, dict(load_file(str(folder / TENSORS_FILE))))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _targets(labels: list[str], order: list[str] | None) -> tuple[list[str], np.ndarray]:
    names = list(order) if order is not None else list(dict.fromkeys(labels))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise HeadFitError(f"examples carry labels not in the label order: {unknown[:5]}")
    if len(names) < 2:
        raise HeadFitError(f"a head needs at least two classes; got {len(names)}")
    targets = np.array([index[label] for label in labels], dtype=np.int64)
    missing = [names[i] for i in np.flatnonzero(np.bincount(targets, minlength=len(names)) == 0)]
    if missing:
        raise HeadFitError(f"labels without any example: {missing[:5]}")
    return names, targets


def fit_head(
    features: np.ndarray,
    labels: list[str],
    *,
    kind: str = "gda",
    text: np.ndarray | None = None,
    text_weight: float = 1.0,
    logit_scale: float = 100.0,
    label_order: list[str] | None = None,
    **metadata: object,
) -> Head:
    """Fit a head of ``kind`` on image ``features`` [N, D] labelled by ``labels`` (one string per row).

    ``text`` [C, D] are the labels' zero-shot text embeddings in ``label_order`` (first-seen order
    by default); needed unless ``text_weight`` is 0. The adapter's parameter and ``alpha`` come
    from cross-validation on the examples; with a single shot of some class there is nothing to
    hold out, so the defaults (GDA shrinkage 1.0, Tip-Adapter beta 5.5, alpha 1.0) are used and
    ``cv_accuracy`` is None. ``metadata`` goes into the config (``model``, ``templates``).
    """
    if kind not in KINDS:
        raise HeadFitError(f"unknown head kind {kind!r}; choose one of {', '.join(KINDS)}")
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(labels):
        raise HeadFitError(f"need one feature row per label; got {features.shape} for {len(labels)} labels")
    if not np.isfinite(features).all():
        raise HeadFitError("features contain NaN or infinity")
    if text_weight < 0:
        raise HeadFitError("text_weight must be >= 0")
    names, targets = _targets(list(labels), label_order)
    f = _unit(features)
    if text_weight:
        if text is None or text.shape != (len(names), f.shape[1]):
            raise HeadFitError(f"text_weight > 0 needs text embeddings [{len(names)}, {f.shape[1]}]")
        text = _unit(np.asarray(text, dtype=np.float32))
    num = len(names)
    counts = np.bincount(targets, minlength=num)
    shots = {name: int(c) for name, c in zip(names, counts)}
    choice = _choose(kind, f, targets, num, text, text_weight * logit_scale, logit_scale)
    alpha, param, accuracy, folds = (
        (choice.alpha, choice.param, choice.accuracy, choice.folds)
        if choice is not None
        else (ONE_SHOT_ALPHA, gda.DEFAULT_SHRINKAGE if kind == "gda" else tip_adapter.DEFAULT_BETA, None, 0)
    )
    if kind == "gda":
        tensors = gda.fit_gda(f, targets, num, param, one_shot_precision=logit_scale)
    else:
        tensors = tip_adapter.fit_tip_adapter(f, targets, num)
    if text_weight:
        tensors["text"] = text
    config = HeadConfig(
        kind=kind,
        labels=names,
        alpha=alpha,
        param=param,
        text_weight=float(text_weight),
        logit_scale=float(logit_scale),
        shots=shots,
        cv_accuracy=accuracy,
        cv_folds=folds,
        **metadata,  # type: ignore[arg-type]
    )
    return Head(config, tensors)


def _choose(
    kind: str,
    f: np.ndarray,
    targets: np.ndarray,
    num: int,
    text: np.ndarray | None,
    text_scale: float,
    logit_scale: float,
) -> cv.Choice | None:
    """Cross-validated (param, alpha), or None when some class has a single shot."""
    if np.bincount(targets, minlength=num).min() < 2:
        return None
    text_logits = text_scale * f @ text.T if text is not None and text_scale else np.zeros((len(f), num))

    def out_of_fold(param: float, train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        if kind == "gda":
            fitted = gda.fit_gda(f[train], targets[train], num, param, one_shot_precision=logit_scale)
            return gda.gda_logits(fitted, f[held_out])
        cache = tip_adapter.fit_tip_adapter(f[train], targets[train], num)
        return tip_adapter.tip_logits(cache, f[held_out], param)

    if kind == "gda":
        params, default = gda.SHRINKAGES, gda.DEFAULT_SHRINKAGE
    else:
        params, default = tip_adapter.BETAS, tip_adapter.DEFAULT_BETA
    # the default first: a tie (e.g. two shots, where each fold trains on one) keeps the default
    params = sorted(params, key=lambda p: abs(np.log(p / default)))
    return cv.select(targets, text_logits, out_of_fold, params)
