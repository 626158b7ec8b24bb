"""The same loop under torchrun: 2 gloo processes == 1 process with the doubled batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from trainer.recipes import dump_train_config
from trainer.train import run_training

REPO = Path(__file__).resolve().parents[3]


def test_two_gloo_processes_match_one_process_with_doubled_batch(make_recipe, tmp_path):
    """With gradient accumulation too: gradients are all-reduced once per optimiser step."""
    single = run_training(
        make_recipe(steps=3, batch_size=4, grad_accum=2, output_dir=str(tmp_path / "single"))
    )
    recipe = make_recipe(steps=3, batch_size=2, grad_accum=2, output_dir=str(tmp_path / "ddp"))
    config_file = tmp_path / "ddp.yaml"
    config_file.write_text(dump_train_config(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "cli.main",
        "train",
        str(config_file),
        "--quiet",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = load_file(single.output_dir / "open_clip_model.safetensors")
    two = load_file(Path(recipe.output_dir) / "open_clip" / "open_clip_model.safetensors")
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=0), key
    assert not torch.equal(
        one["visual.conv1.weight"],
        load_file(Path(make_recipe().model) / "open_clip_model.safetensors")["visual.conv1.weight"],
    )
