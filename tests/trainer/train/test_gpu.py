"""GPU paths (opt-in: -m gpu): bf16 training with the fast options, and the benchmark's CUDA mode."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainer.train import run_training

pytestmark = pytest.mark.gpu


def test_bf16_training_with_fast_options_on_cuda(make_recipe):
    recipe = make_recipe(steps=3, device="cuda", channels_last=True, compile=False, **{"optim.fused": True})
    assert recipe.resolved_precision() == "bf16"
    result = run_training(recipe)
    assert result.steps_done == 3 and math.isfinite(result.final_loss)
    assert next(result.bundle.model.visual.parameters()).dtype == torch.float32  # fp32 master weights


def test_benchmark_tiny_on_cuda_reports_peak_memory():
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[3] / "bench" / "train_step.py"  # what the lead runs
    spec = importlib.util.spec_from_file_location("bench_train_step_gpu", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    payload = module.run(module.parse_args(["--tiny", "--device", "cuda", "--warmup", "1", "--steps", "2"]))
    assert all(r["peak_gib"] is not None for r in payload["results"].values())
