"""trainer.heads on synthetic features: GDA's shared covariance, Tip-Adapter's cache, the CV choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.heads import Head, HeadFitError, fit_head
from trainer.heads.cv import stratified_folds


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def elongated(rng: np.random.Generator, per_class: int, dim: int = 16) -> tuple[np.ndarray, list[str]]:
    """Two classes whose means differ along a quiet axis while a loud axis carries shared noise:
    nearest-mean is fooled by the loud axis, a shared covariance (GDA) discounts it."""
    base = np.zeros(dim)
    base[0] = 1.0
    rows, labels = [], []
    for name, offset in (("a", -0.15), ("b", 0.15)):
        noise = rng.normal(0, 0.02, (per_class, dim))
        noise[:, 2] = rng.normal(0, 0.6, per_class)  # loud, label-free
        noise[:, 1] += offset
        rows.append(base + noise)
        labels += [name] * per_class
    return unit(np.concatenate(rows)).astype(np.float32), labels


def accuracy(head: Head, features: np.ndarray, labels: list[str]) -> float:
    predicted = head.logits(features).argmax(axis=1)
    return float(np.mean([head.labels[p] == label for p, label in zip(predicted, labels)]))


def test_gda_discounts_shared_noise_that_fools_nearest_mean() -> None:
    rng = np.random.default_rng(0)
    train, train_labels = elongated(rng, 16)
    test, test_labels = elongated(rng, 200)
    head = fit_head(train, train_labels, text_weight=0.0)
    means = np.stack([train[np.array(train_labels) == c].mean(0) for c in ("a", "b")])
    nearest = np.array(["a", "b"])[(unit(test) @ unit(means).T).argmax(1)]
    assert accuracy(head, test, test_labels) > 0.95
    assert np.mean(nearest == np.array(test_labels)) < 0.8
    assert head.config.cv_accuracy is not None and head.config.cv_accuracy > 0.9
    assert head.config.cv_folds == 5


def test_cross_validation_outweighs_misleading_text() -> None:
    """Text embeddings that name the wrong classes: alpha must grow until the shots win."""
    rng = np.random.default_rng(1)
    centres = unit(rng.normal(size=(3, 8)))
    labels = [name for name in "xyz" for _ in range(8)]
    features = unit(np.repeat(centres, 8, axis=0) + rng.normal(0, 0.1, (24, 8)))
    wrong_text = centres[[1, 2, 0]]  # x's caption looks like y, ...
    head = fit_head(features, labels, text=wrong_text, logit_scale=100.0)
    test = unit(np.repeat(centres, 20, axis=0) + rng.normal(0, 0.1, (60, 8)))
    assert accuracy(head, test, [n for n in "xyz" for _ in range(20)]) > 0.95
    assert head.config.alpha >= 1.0
    zero_shot = Head(head.config, head.tensors)
    zero_shot.config = type(head.config)(**{**head.config.__dict__, "alpha": 0.0})
    assert accuracy(zero_shot, test, [n for n in "xyz" for _ in range(20)]) < 0.1


def test_tip_adapter_handles_classes_made_of_two_clusters() -> None:
    """Each class is two opposite clusters, so both class means are ~0: GDA cannot, a cache can."""
    rng = np.random.default_rng(2)
    axes = np.eye(6)
    clusters = {"p": (axes[0], -axes[0]), "q": (axes[1], -axes[1])}

    def draw(per_cluster: int) -> tuple[np.ndarray, list[str]]:
        rows = [c + rng.normal(0, 0.1, (per_cluster, 6)) for pair in clusters.values() for c in pair]
        return unit(np.concatenate(rows)), [n for n in clusters for _ in range(2 * per_cluster)]

    train, train_labels = draw(8)
    test, test_labels = draw(50)
    tip = fit_head(train, train_labels, kind="tip_adapter", text_weight=0.0)
    gda = fit_head(train, train_labels, kind="gda", text_weight=0.0)
    assert accuracy(tip, test, test_labels) > 0.95
    assert accuracy(gda, test, test_labels) < 0.8
    assert tip.config.param_name == "beta" and tip.tensors["keys"].shape == (32, 6)


def test_one_shot_per_class_uses_the_documented_defaults() -> None:
    rng = np.random.default_rng(3)
    features = unit(rng.normal(size=(3, 8)))
    for kind, param in (("gda", 1.0), ("tip_adapter", 5.5)):
        head = fit_head(features, ["a", "b", "c"], kind=kind, text_weight=0.0)
        assert (head.config.alpha, head.config.param, head.config.cv_accuracy) == (1.0, param, None)
        assert accuracy(head, features, ["a", "b", "c"]) == 1.0  # each shot is its own class's prototype


@pytest.mark.parametrize("kind", ["gda", "tip_adapter"])
@pytest.mark.parametrize("text_weight", [0.0, 1.0])
def test_save_and_load_give_the_same_head(tmp_path: Path, kind: str, text_weight: float) -> None:
    rng = np.random.default_rng(4)
    features, labels = elongated(rng, 6)
    text = unit(rng.normal(size=(2, features.shape[1])))
    head = fit_head(
        features, labels, kind=kind, text=text, text_weight=text_weight, model="m", templates=["{}"]
    )
    again = Head.from_pretrained(head.save_pretrained(tmp_path / "head"))
    assert again.config == head.config
    assert ("text" in again.tensors) == bool(text_weight)
    np.testing.assert_allclose(again.logits(features), head.logits(features), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (["a"] * 4, {"text_weight": 0.0}, "at least two classes"),
        (["a", "a", "b", "b"], {}, "needs text embeddings"),
        (["a", "a", "b", "b"], {"kind": "svm", "text_weight": 0.0}, "unknown head kind"),
        (["a", "a", "b"], {"text_weight": 0.0}, "one feature row per label"),
        (["a", "a", "b", "b"], {"text_weight": 0.0, "label_order": ["a", "b", "c"]}, "without any example"),
    ],
)
def test_unusable_examples_are_refused(labels: list[str], kwargs: dict, message: str) -> None:
    features = unit(np.random.default_rng(5).normal(size=(4, 8)))
    with pytest.raises(HeadFitError, match=message):
        fit_head(features, labels, **kwargs)


def test_folds_hold_out_every_class_and_cover_every_example() -> None:
    targets = np.array([0] * 3 + [1] * 9 + [2] * 20)
    folds = stratified_folds(targets)
    assert len(folds) == 3  # the rarest class has three shots
    held = np.concatenate([held_out for _, held_out in folds])
    assert sorted(held) == list(range(len(targets)))
    for train, held_out in folds:
        assert set(targets[held_out]) == {0, 1, 2} and not set(train) & set(held_out)
