"""``diva train``: dry run, a short real run, clear errors with exit code 2."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from trainer.backbones import create_clip, save_open_clip
from trainer.feedback import build_tiny_diffusion


def _world(tmp_path) -> list[str]:
    """A recipe file of this test's own plus overrides pointing at tiny models."""
    torch.manual_seed(0)
    base = save_open_clip(create_clip("diva-tiny-vit"), tmp_path / "base")
    sd = build_tiny_diffusion(tmp_path / "sd")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray(np.full((24, 24, 3), 60 * i, np.uint8)).save(images / f"{i}.png")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model: diva-tiny-vit\ndiffusion: nowhere\ndata: {path: nowhere}\n"
        "condition: {kind: cls_plus_random, n: 76}\nsteps: 10\nbatch_size: 2\ncrop_size: 16\n"
    )
    overrides = {"model": base, "diffusion": sd, "data.path": images, "output_dir": tmp_path / "run"}
    args = [str(recipe), "--set", "device=cpu"]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_dry_run_prints_recipe_and_parameter_counts(tmp_path):
    result = CliRunner().invoke(app, ["train", "--dry-run", *_world(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "condition:" in result.output and "kind: cls_plus_random" in result.output
    assert "# condition tokens: 77 (patches: 16)" in result.output
    assert "# parameters trainable:" in result.output and "# parameters frozen_unet:" in result.output
    assert not (tmp_path / "run").exists()


def test_short_run_writes_an_open_clip_folder(tmp_path):
    args = ["train", *_world(tmp_path), "--set", "steps=2", "--quiet"]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "open_clip" / "open_clip_model.safetensors").is_file()
    assert "done: 2 steps" in result.output


def test_errors_are_named_with_exit_code_2(tmp_path):
    world = _world(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(app, ["train", *world, "--set", f"diffusion={tmp_path / 'none'}"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    typo = runner.invoke(app, ["train", *world[:1], "--set", "stepz=3"])
    assert typo.exit_code == 2 and "stepz" in typo.output
    unknown = runner.invoke(app, ["train", "no-such-recipe"])
    assert unknown.exit_code == 2 and "neither a file nor a preset" in unknown.output
