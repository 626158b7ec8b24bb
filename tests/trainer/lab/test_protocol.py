"""The held-out protocol: test draws apart from the development draw, cached, compared per draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.artifacts import BUILTIN_MODELS_DIR
from trainer.lab.protocol import (
    DEVELOPMENT_SEED,
    TEST_PAIRS_PER_PATTERN,
    TEST_SEEDS,
    compare_held_out,
    evaluate_held_out,
    format_held_out,
    test_draw,
)

test_draw.__test__ = False  # a library function, not a pytest test


def test_the_split_is_disjoint_and_fine_enough() -> None:
    assert DEVELOPMENT_SEED not in TEST_SEEDS and len(set(TEST_SEEDS)) >= 5
    assert 100 / (9 * TEST_PAIRS_PER_PATTERN) < 0.1  # one pair moves the average by under 0.1 point
    with pytest.raises(ValueError, match="development draw"):
        test_draw("/nonexistent", DEVELOPMENT_SEED)


def test_draws_are_cached_and_differ_by_seed(tmp_path: Path) -> None:
    first = test_draw(tmp_path, 7001, pairs_per_pattern=1)
    stamp = (first / ".complete").stat().st_mtime_ns
    assert test_draw(tmp_path, 7001, pairs_per_pattern=1) == first
    assert (first / ".complete").stat().st_mtime_ns == stamp  # reused, not redrawn
    other = test_draw(tmp_path, 7002, pairs_per_pattern=1)
    a, b = (sorted((d / "mmvp").rglob("*.png"))[0].read_bytes() for d in (first, other))
    assert a != b


def test_compare_reports_each_draw_and_the_spread(tmp_path: Path) -> None:
    from trainer.backbones.factory import create_clip

    base = create_clip(str(BUILTIN_MODELS_DIR / "lab-clip-base" / "open_clip"))
    post = create_clip(str(BUILTIN_MODELS_DIR / "lab-clip-diva" / "open_clip"))
    seeds = (7001, 7002)
    held = [evaluate_held_out(b, tmp_path, seeds=seeds, pairs_per_pattern=3) for b in (base, post)]
    comparison = compare_held_out(*held)
    gains = [d["gain"] for d in comparison["draws"]]
    assert [d["seed"] for d in comparison["draws"]] == list(seeds)
    assert comparison["gain"]["mean"] == pytest.approx(sum(gains) / 2)
    assert comparison["gain"]["min"] == min(gains)
    assert comparison["protocol"]["pairs_per_pattern"] == 3
    assert set(comparison["pattern_gain"]) == set(held[0].scores[0].mmvp.patterns)
    table = format_held_out(comparison, ("lab-clip-base", "lab-clip-diva"))
    assert "| 7001 |" in table and "| mean ± std |" in table
    with pytest.raises(ValueError, match="different test draws"):
        compare_held_out(held[0], evaluate_held_out(post, tmp_path, seeds=(7001,), pairs_per_pattern=3))
