"""The lab-sd layout benchmark times every layout on both paths and compares it to the shipped one."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def bench(load_bench):
    return load_bench("lab_sd.py")


def test_every_layout_is_timed_on_both_paths(bench, run_bench, capsys):
    run_bench(bench, "--steps", "1", "--rounds", "1", "--batch", "2")
    out = capsys.readouterr().out
    payload = json.loads(out.strip().splitlines()[-1])
    assert set(payload["seconds_per_pass"]) == set(bench.LAYOUTS)
    for seconds in payload["seconds_per_pass"].values():
        assert set(seconds) == {"pretrain", "post"} and all(value > 0 for value in seconds.values())
    assert bench.prompt_shape() == (36, 96)  # the lab CLIP's context and joint width


def test_the_shipped_layout_is_always_the_reference_and_unknown_names_are_refused(bench, run_bench, capsys):
    run_bench(
        bench, "--steps", "1", "--rounds", "1", "--batch", "2", "--layouts", "32px-attention-8px-no-mid"
    )
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(payload["seconds_per_pass"]) == ["shipped", "32px-attention-8px-no-mid"]
    with pytest.raises(SystemExit):
        run_bench(bench, "--layouts", "no-such-layout")
