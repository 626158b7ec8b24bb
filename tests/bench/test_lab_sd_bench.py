"""The lab-sd layout benchmark times every layout on both paths and compares it to the shipped one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lab_sd.py"


@pytest.fixture
def bench():
    """The benchmark script as a module; its ``main`` sets torch's threads, restored afterwards."""
    spec = importlib.util.spec_from_file_location("bench_lab_sd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    yield module
    torch.set_num_threads(previous)


def run_bench(bench, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["lab_sd.py", *args])
    bench.main()


def test_every_layout_is_timed_on_both_paths(bench, monkeypatch, capsys):
    run_bench(bench, monkeypatch, "--steps", "1", "--rounds", "1", "--batch", "2")
    out = capsys.readouterr().out
    payload = json.loads(out.strip().splitlines()[-1])
    assert set(payload["seconds_per_pass"]) == set(bench.LAYOUTS)
    for seconds in payload["seconds_per_pass"].values():
        assert set(seconds) == {"pretrain", "post"} and all(value > 0 for value in seconds.values())
    assert bench.prompt_shape() == (36, 96)  # the lab CLIP's context and joint width


def test_the_shipped_layout_is_always_the_reference_and_unknown_names_are_refused(bench, monkeypatch, capsys):
    run_bench(
        bench, monkeypatch, "--steps", "1", "--rounds", "1", "--batch", "2", "--layouts", "attention-8px"
    )
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(payload["seconds_per_pass"]) == ["shipped", "attention-8px"]
    with pytest.raises(SystemExit):
        run_bench(bench, monkeypatch, "--layouts", "no-such-layout")
