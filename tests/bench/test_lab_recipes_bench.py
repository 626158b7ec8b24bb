"""The lab-recipe cost benchmark runs every variant through the real trainer and prints its ratios."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lab_recipes.py"


def test_every_variant_runs_and_is_compared_to_the_shipped_recipe(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_lab_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", ["lab_recipes.py", "--steps", "3", "--warmup", "1", "--rounds", "1"])
    try:
        module.main()
    finally:
        torch.set_num_threads(previous)
    out = capsys.readouterr().out
    payload = json.loads(out.strip().splitlines()[-1])
    assert set(payload["seconds_per_step"]) == set(module.VARIANTS)
    assert all(value > 0 for value in payload["seconds_per_step"].values())
    assert "x shipped" in out


def test_speed_flags_are_chosen_by_name_and_unknown_names_are_refused(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_lab_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    argv = ["lab_recipes.py", "--steps", "3", "--warmup", "1", "--rounds", "1", "--variants", "channels-last"]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        module.main()
    finally:
        torch.set_num_threads(previous)
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(payload["seconds_per_step"]) == ["shipped", "channels-last"]
    monkeypatch.setattr(sys, "argv", ["lab_recipes.py", "--variants", "warp-drive"])
    with pytest.raises(SystemExit):
        module.main()
