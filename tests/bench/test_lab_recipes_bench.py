"""The lab-recipe cost benchmark runs every variant through the real trainer and prints its ratios."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def bench(load_bench):
    return load_bench("lab_recipes.py")


def test_every_variant_runs_and_is_compared_to_the_shipped_recipe(bench, run_bench, capsys):
    run_bench(bench, "--steps", "3", "--warmup", "1", "--rounds", "1")
    out = capsys.readouterr().out
    payload = json.loads(out.strip().splitlines()[-1])
    assert set(payload["seconds_per_step"]) == set(bench.VARIANTS)
    assert all(value > 0 for value in payload["seconds_per_step"].values())
    assert "x shipped" in out


def test_speed_flags_are_chosen_by_name_and_unknown_names_are_refused(bench, run_bench, capsys):
    run_bench(bench, "--steps", "3", "--warmup", "1", "--rounds", "1", "--variants", "channels-last")
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(payload["seconds_per_step"]) == ["shipped", "channels-last"]
    with pytest.raises(SystemExit):
        run_bench(bench, "--variants", "warp-drive")
