"""bench/serve.py runs end to end on CPU with a tiny model (its GPU mode included): no timing asserted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.slow
def test_gpu_mode_code_path_runs_on_cpu(tmp_path):
    bench = load_bench()
    out = tmp_path / "serve.json"
    results = bench.main(
        [
            "--gpu",
            "--device",
            "cpu",
            "--arch",
            "diva-tiny-vit",
            "--precision",
            "fp32",
            "--batch",
            "8",
            "--tower-seconds",
            "0.5",
            "--warmup",
            "0.5",
            "--duration",
            "1",
            "--gpu-clients",
            "2",
            "--images-per-request",
            "4",
            "--jpeg-size",
            "64",
            "--out",
            str(out),
        ]
    )
    e2e = results["gpu_end_to_end"]
    assert out.is_file()
    assert e2e["end_to_end"]["requests"] > 0 and e2e["end_to_end"]["errors"] == 0
    assert e2e["tower_images_per_s"] > 0 and e2e["ratio"] > 0


def test_classify_bench_runs(tmp_path):
    bench = load_bench()
    results = bench.main(
        ["--only", "classify", "--arch", "diva-tiny-vit", "--labels", "8", "--out", str(tmp_path / "c.json")]
    )
    cache = results["classify_cache"]
    assert cache["first_ms"] > 0 and cache["repeated_ms"] > 0
