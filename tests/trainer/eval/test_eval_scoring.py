"""MMVP scoring on hand-built logits, and the publish gate: pure arithmetic, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.eval.gate import zero_shot_gate
from trainer.eval.mmvp import score_pairs
from trainer.eval.mmvp_data import PATTERN_NAMES

RIGHT = [[2.0, 1.0], [1.0, 2.0]]  # statement s prefers image s
BOTH_FIRST = [[2.0, 1.0], [2.0, 1.0]]  # statement 2 picks the wrong image
SWAPPED = [[1.0, 2.0], [2.0, 1.0]]


def test_pair_counts_only_if_both_statements_pick_their_own_image():
    result = score_pairs(np.array([RIGHT, BOTH_FIRST, SWAPPED]), ["A", "A", "A"])
    assert [p.correct for p in result.pairs] == [True, False, False]
    assert [p.picks for p in result.pairs] == [(0, 1), (0, 0), (1, 0)]
    assert result.patterns == {"A": pytest.approx(100 / 3)}


def test_headline_is_mean_of_categories_not_of_pairs():
    # A: 1 of 2 pairs right (50), B: 1 of 1 right (100) -> 75; the pair mean would be 66.7.
    result = score_pairs(np.array([RIGHT, BOTH_FIRST, RIGHT]), ["A", "A", "B"])
    assert result.patterns == {"A": 50.0, "B": 100.0}
    assert result.average == 75.0


def test_official_nine_patterns_of_fifteen_pairs():
    logits, patterns = [], []
    for k, name in enumerate(PATTERN_NAMES):
        for n in range(15):
            logits.append(RIGHT if n < k else SWAPPED)  # pattern k gets k correct pairs
            patterns.append(name)
    result = score_pairs(np.array(logits), patterns)
    assert list(result.patterns) == list(PATTERN_NAMES)
    for k, name in enumerate(PATTERN_NAMES):
        assert result.patterns[name] == pytest.approx(100 * k / 15)
    assert result.average == pytest.approx(100 * np.mean(range(9)) / 15)
    assert result.correct_pairs == sum(range(9))


def test_tie_picks_the_second_image_like_the_official_script():
    result = score_pairs(np.array([[[1.0, 1.0], [1.0, 2.0]]]), ["A"])
    assert result.pairs[0].picks == (1, 1)
    assert not result.pairs[0].correct


def test_softmax_and_sigmoid_scores():
    logits = np.array([[[3.0, 1.0], [0.0, -1.0]]])
    soft = score_pairs(logits, ["A"])
    assert soft.pairs[0].scores[0][0] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert sum(soft.pairs[0].scores[1]) == pytest.approx(1.0)
    sig = score_pairs(logits, ["A"], sigmoid=True)
    assert sig.pairs[0].scores[1][1] == pytest.approx(1 / (1 + math.exp(1.0)))
    assert sig.pairs[0].picks == soft.pairs[0].picks == (0, 0)


def test_bad_logit_shapes_are_refused():
    with pytest.raises(ValueError, match=r"shape \(pairs, 2, 2\)"):
        score_pairs(np.zeros((3, 2)), ["A"] * 3)
    with pytest.raises(ValueError, match="2 pattern names for 1 pairs"):
        score_pairs(np.zeros((1, 2, 2)), ["A", "B"])


@pytest.mark.parametrize(
    ("base", "post", "passed"),
    [(75.0, 75.0, True), (75.0, 74.0, True), (75.0, 73.99, False), (60.0, 70.0, True), (80.0, 50.0, False)],
)
def test_gate_passes_within_tolerance(base, post, passed):
    decision = zero_shot_gate(base, post)
    assert decision.passed is passed
    assert decision.reason.startswith("passed" if passed else "failed")
    assert f"{base:.2f} -> {post:.2f}" in decision.reason


def test_gate_failure_says_how_much_was_lost():
    decision = zero_shot_gate(70.0, 65.5, tolerance=2.0)
    assert not decision.passed
    assert decision.drop == pytest.approx(4.5)
    assert "lost 4.50 points, more than the allowed 2" in decision.reason


@pytest.mark.parametrize(
    ("base", "post", "tolerance"), [(float("nan"), 1.0, 1.0), (101.0, 1.0, 1.0), (1.0, 1.0, -1)]
)
def test_gate_refuses_nonsense(base, post, tolerance):
    with pytest.raises(ValueError):
        zero_shot_gate(base, post, tolerance)


def test_gate_imports_without_torch():
    import subprocess
    import sys

    code = "import sys; from trainer.eval import zero_shot_gate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_exported_name_resolves():
    import trainer.eval

    for name in trainer.eval.__all__:
        assert getattr(trainer.eval, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trainer.eval.nope  # noqa: B018


@pytest.mark.parametrize(
    ("base", "post", "regressed"), [(60.0, 58.0, False), (60.0, 57.9, True), (50.0, 70.0, False)]
)
def test_fine_grained_check_flags_an_mmvp_drop_past_the_tolerance(base, post, regressed):
    from trainer.eval import fine_grained_check

    check = fine_grained_check(base, post, tolerance=2.0)
    assert check.regressed is regressed
    assert check.reason.startswith("regressed" if regressed else "held")
    assert f"MMVP {base:.1f} -> {post:.1f}" in check.reason
    with pytest.raises(ValueError):
        fine_grained_check(base, float("nan"))
