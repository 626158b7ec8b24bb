"""The training-step benchmark runs on tiny shapes and its variants compute the same loss."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_step.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_run_reports_three_variants_with_the_same_loss(bench, capsys):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        payload = bench.run(bench.parse_args(["--tiny", "--warmup", "1", "--steps", "1", "--device", "cpu"]))
    finally:
        torch.set_num_threads(previous)
    results = payload["results"]
    assert list(results) == ["replica", "project", "project+cache"]
    assert results["replica"]["ratio"] == 1.0
    # Same math: after the same warm-up update the three paths see (almost) the same loss.
    assert results["project"]["loss"] == pytest.approx(results["replica"]["loss"], rel=1e-4)
    assert results["project+cache"]["loss"] == pytest.approx(results["replica"]["loss"], rel=1e-3)
    out = capsys.readouterr().out
    assert "x replica" in out and '"bench": "train_step"' in out
