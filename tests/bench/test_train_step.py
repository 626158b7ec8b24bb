"""The training-step benchmark runs on tiny shapes and its variants compute the same loss."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def bench(load_bench):
    return load_bench("train_step.py")


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
