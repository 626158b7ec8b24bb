"""bench/serve_ab.py: variants of the project's server, each started with its own environment,
measured in turns (no timing asserted)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_two_variants_are_served_and_measured(load_bench):
    ab = load_bench("serve_ab.py")
    variants = '{"torch": {"DIVA_RUNTIME": "torch"}, "onnx": {"DIVA_RUNTIME": "onnx"}}'
    options = ["--model", "lab-clip-base", "--rounds", "1", "--seconds", "0.3", "--concurrency", "2"]
    results = ab.main([variants, *options])
    for workload in ("texts", "images"):
        for name in ("torch", "onnx"):
            (run,) = results[workload][name]
            assert run["requests"] > 0 and run["errors"] == 0 and run["cpu_ms_per_item"] >= 0
