"""run_training end to end on tiny models: what trains, what stays frozen, resume, output, errors."""

from __future__ import annotations

import open_clip
import pytest
import torch
from safetensors.torch import load_file

from trainer.backbones import UnknownBackboneError, create_clip, save_open_clip
from trainer.feedback import DiffusionFolderError
from trainer.train import run_training
from trainer.train.checkpoint import latest_checkpoint, list_checkpoints
from trainer.train.data import DatasetError
from trainer.train.loop import feedback_loss, make_optimizer, param_groups
from trainer.train.model import build_setup

CPU = torch.device("cpu")


def test_only_tower_and_projector_get_gradients(make_recipe, make_batch):
    setup = build_setup(make_recipe(), CPU, torch.float32)
    frozen = {
        "unet": setup.feedback.unet,
        "vae": setup.feedback.vae,
        "clip_text": setup.bundle.model.transformer,
    }
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in frozen.items()}
    prompt = setup.student.condition.prompt_embeds.clone()
    tower_before = {k: v.clone() for k, v in setup.bundle.model.visual.state_dict().items()}
    params = [p for p in setup.student.parameters() if p.requires_grad]
    optimizer = make_optimizer(make_recipe(), params, CPU)
    for _ in range(3):
        feedback_loss(setup, setup.student, make_batch(setup), CPU).backward()
        assert all(p.grad is not None for p in params)
        for module in frozen.values():
            assert all(p.grad is None and not p.requires_grad for p in module.parameters())
        optimizer.step()
        optimizer.zero_grad()
    for name, module in frozen.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, before[name][key]), f"{name}.{key} changed"
    assert torch.equal(prompt, setup.student.condition.prompt_embeds)
    assert not torch.equal(tower_before["conv1.weight"], setup.bundle.model.visual.conv1.weight)


def test_projector_learns_at_its_share_of_the_rate(make_recipe):
    recipe = make_recipe(
        steps=2, checkpoint_every=2, **{"optim.name": "adamw", "optim.projector_lr_scale": 0.25}
    )
    setup = build_setup(recipe, CPU, torch.float32)
    groups = param_groups(setup.student, recipe)
    projector = {id(p) for p in setup.student.condition.projector.parameters()}
    assert [g["lr_scale"] for g in groups] == [1.0, 0.25]
    assert {id(p) for p in groups[1]["params"]} == projector
    assert not projector & {id(p) for p in groups[0]["params"]}
    run_training(recipe)
    saved = torch.load(latest_checkpoint(recipe.output_dir), weights_only=False)["optimizer"]["param_groups"]
    tower_lr, projector_lr = (g["lr"] for g in saved)
    assert tower_lr > 0 and projector_lr == pytest.approx(0.25 * tower_lr)


def test_one_group_at_the_full_rate_as_before_the_knob(make_recipe):
    recipe = make_recipe()
    setup = build_setup(recipe, CPU, torch.float32)
    (group,) = param_groups(setup.student, recipe)
    assert group["params"] == [p for p in setup.student.parameters() if p.requires_grad]


def test_loss_falls_over_50_steps(make_recipe, make_batch):
    # AdamW: with a random-weight tiny UNet the reducible part of the loss is small (predicting
    # zero scores ~1.0), so SGD at DIVA's settings moves it too little to see in 50 steps.
    recipe = make_recipe(
        steps=50, checkpoint_every=50, timestep_draws=4, **{"optim.name": "adamw", "optim.lr": 1e-3}
    )
    torch.manual_seed(recipe.seed)
    setup = build_setup(recipe, CPU, torch.float32)
    batch = make_batch(setup, images=8)
    with torch.no_grad():
        before = float(feedback_loss(setup, setup.student, batch, CPU))
    result = run_training(recipe)
    setup.student.load_state_dict(torch.load(latest_checkpoint(recipe.output_dir))["model"])
    with torch.no_grad():
        after = float(feedback_loss(setup, setup.student, batch, CPU))
    assert result.steps_done == 50
    assert after < 0.96 * before, (before, after)


def test_resume_after_cancel_matches_uninterrupted_run(make_recipe, tmp_path):
    straight = run_training(make_recipe(steps=20, output_dir=str(tmp_path / "straight")))
    calls = {"n": 0}

    def stop_at_ten() -> bool:
        calls["n"] += 1
        return calls["n"] == 11  # polled before each step: stop with 10 steps done

    interrupted = make_recipe(steps=20, output_dir=str(tmp_path / "interrupted"))
    first = run_training(interrupted, should_stop=stop_at_ten)
    assert first.stopped and first.steps_done == 10 and first.bundle is None
    assert not first.output_dir.exists()
    assert [step for step, _ in list_checkpoints(interrupted.output_dir)][-1] == 10
    second = run_training(interrupted)
    assert second.resumed_from_step == 10 and second.steps_done == 20 and not second.stopped
    a = load_file(straight.output_dir / "open_clip_model.safetensors")
    b = load_file(second.output_dir / "open_clip_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    assert second.final_loss == pytest.approx(straight.final_loss, abs=1e-6)


def test_output_reloads_in_open_clip_with_same_embeddings(make_recipe, tiny_world):
    result = run_training(make_recipe(steps=3))
    pixels = torch.randn(2, 3, 32, 32)
    model = result.bundle.model.eval()
    with torch.no_grad():
        expected = model.encode_image(pixels)
        by_folder, _, _ = open_clip.create_model_and_transforms(f"local-dir:{result.output_dir}")
        weights = str(result.output_dir / "open_clip_model.safetensors")
        by_name, _, _ = open_clip.create_model_and_transforms("diva-tiny-vit", pretrained=weights)
        for reloaded in (by_folder.eval(), by_name.eval()):
            assert torch.allclose(reloaded.encode_image(pixels), expected, atol=1e-6)
    base = load_file(tiny_world["base"] / "open_clip_model.safetensors")
    saved = load_file(result.output_dir / "open_clip_model.safetensors")
    assert base.keys() == saved.keys()
    for key in base:
        changed = not torch.equal(base[key], saved[key])
        # The text tower is original, bit for bit; the vision tower is new.
        assert changed == key.startswith("visual."), key
    assert not torch.equal(base["visual.conv1.weight"], saved["visual.conv1.weight"])


def test_unreadable_and_truncated_images_are_skipped_and_counted(make_recipe, image_writer, tmp_path):
    folder = image_writer(tmp_path / "mixed", count=6)
    (folder / "garbage.png").write_bytes(b"definitely not a png")
    good = (folder / "000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    result = run_training(make_recipe(steps=3, **{"data.path": str(folder)}))
    assert result.steps_done == 3 and result.skipped_images == 2


def test_bad_inputs_are_clear_errors(make_recipe, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="contains no images"):
        run_training(make_recipe(**{"data.path": str(tmp_path / "empty")}))
    with pytest.raises(UnknownBackboneError, match="ViT-Nope"):
        run_training(make_recipe(model="ViT-Nope"))
    with pytest.raises(DiffusionFolderError, match="does not exist"):
        run_training(make_recipe(diffusion=str(tmp_path / "no-sd")))


def test_timm_tower_with_map_pooling_trains_and_reloads(make_recipe, tmp_path):
    """The SigLIP family's path (timm trunk, MAP-pooled token + average-pooled patches), tiny."""
    torch.manual_seed(0)
    base = save_open_clip(create_clip("diva-tiny-maphead"), tmp_path / "maphead")
    recipe = make_recipe(
        steps=2, model=str(base), condition={"kind": "pooled_plus_avgpool", "window": 14, "combine": "mean"}
    )
    result = run_training(recipe)
    assert result.steps_done == 2
    before = load_file(base / "open_clip_model.safetensors")
    after = load_file(result.output_dir / "open_clip_model.safetensors")
    assert not torch.equal(
        before["visual.trunk.patch_embed.proj.weight"], after["visual.trunk.patch_embed.proj.weight"]
    )
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("visual."))
    pixels = torch.randn(1, 3, 224, 224)
    reloaded, _, _ = open_clip.create_model_and_transforms(f"local-dir:{result.output_dir}")
    with torch.no_grad():
        expected = result.bundle.model.eval().encode_image(pixels)
        assert torch.allclose(reloaded.eval().encode_image(pixels), expected, atol=1e-5)


def test_resuming_with_another_recipe_is_refused(make_recipe):
    from trainer.train.checkpoint import CheckpointMismatchError

    run_training(make_recipe(steps=2))
    with pytest.raises(CheckpointMismatchError, match="seed"):
        run_training(make_recipe(steps=2, seed=7))
    again = run_training(make_recipe(steps=2))  # same recipe: a finished run just re-saves its model
    assert again.resumed_from_step == 2 and again.steps_done == 2 and again.output_dir.is_dir()
