"""The lab-recipe cost benchmark runs every variant through the real trainer and prints its ratios."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lab_recipes.py"


@pytest.fixture
def bench():
    """The benchmark script as a module; its ``main`` sets torch's threads, restored afterwards."""
    spec = importlib.util.spec_from_file_location("bench_lab_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    yield module
    torch.set_num_threads(previous)


def run_bench(bench, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["lab_recipes.py", *args])
    bench.main()


def test_every_variant_runs_and_is_compared_to_the_shipped_recipe(bench, monkeypatch, capsys):
    run_bench(bench, monkeypatch, "--steps", "3", "--warmup", "1", "--rounds", "1")
    out = capsys.readouterr().out
    payload = json.loads(out.strip().splitlines()[-1])
    assert set(payload["seconds_per_step"]) == set(bench.VARIANTS)
    assert all(value > 0 for value in payload["seconds_per_step"].values())
    assert "x shipped" in out


def test_speed_flags_are_chosen_by_name_and_unknown_names_are_refused(bench, monkeypatch, capsys):
    run_bench(
        bench, monkeypatch, "--steps", "3", "--warmup", "1", "--rounds", "1", "--variants", "channels-last"
    )
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(payload["seconds_per_step"]) == ["shipped", "channels-last"]
    with pytest.raises(SystemExit):
        run_bench(bench, monkeypatch, "--variants", "warp-drive")
