"""Recipe knobs of the follow-ups: projector-only warm-up stage, LoRA (merged before saving)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from trainer.train import run_training
from trainer.train.model import build_setup


def test_projector_warmup_keeps_the_tower_frozen_then_trains_it(make_recipe, tiny_world, tmp_path):
    base = load_file(tiny_world["base"] / "open_clip_model.safetensors")
    warm_only = run_training(
        make_recipe(steps=4, projector_warmup_steps=3, output_dir=str(tmp_path / "a")),
        should_stop=iter([False, False, False, True]).__next__,
    )
    assert warm_only.stopped and warm_only.steps_done == 3
    checkpoint = torch.load(warm_only.run_dir / "checkpoints" / "step-00000003.pt")
    tower = {
        k.removeprefix("tower.visual."): v for k, v in checkpoint["model"].items() if k.startswith("tower.")
    }
    for key, value in tower.items():
        assert torch.equal(value, base[f"visual.{key}"]), key  # stage 1: the tower has not moved
    assert any(k.startswith("condition.projector.") for k in checkpoint["model"])
    finished = run_training(make_recipe(steps=4, projector_warmup_steps=3, output_dir=str(tmp_path / "a")))
    saved = load_file(finished.output_dir / "open_clip_model.safetensors")
    assert not torch.equal(saved["visual.conv1.weight"], base["visual.conv1.weight"])  # stage 2 trains it


def test_lora_trains_adapters_only_and_saves_a_plain_merged_clip(make_recipe, tiny_world):
    recipe = make_recipe(steps=3, lora={"r": 4, "alpha": 8.0})
    setup = build_setup(recipe, torch.device("cpu"), torch.float32)
    trainable = [n for n, p in setup.student.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("condition.projector.") for n in trainable)
    result = run_training(recipe)
    base = load_file(tiny_world["base"] / "open_clip_model.safetensors")
    saved = load_file(result.output_dir / "open_clip_model.safetensors")
    assert saved.keys() == base.keys()  # merged: no adapter keys, loads as an ordinary CLIP
    changed = {k for k in base if not torch.equal(base[k], saved[k])}
    assert "visual.transformer.resblocks.0.mlp.c_fc.weight" in changed
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in changed
    assert "visual.conv1.weight" not in changed  # not a linear layer: untouched by LoRA
    pixels = torch.randn(2, 3, 32, 32)
    from trainer.backbones import create_clip

    reloaded = create_clip(str(result.output_dir))
    with torch.no_grad():
        assert torch.allclose(
            reloaded.model.encode_image(pixels), result.bundle.model.eval().encode_image(pixels), atol=1e-5
        )


def test_infonce_shares_the_noise_so_the_negatives_are_not_trivial(make_recipe, make_batch):
    from trainer.train.loop import feedback_loss

    recipe = make_recipe(loss={"kind": "infonce", "temperature": 0.1})
    setup = build_setup(recipe, torch.device("cpu"), torch.float32)
    batch = make_batch(setup)
    batch["pixels_aug"] = batch["pixels"].flip(-1)
    with torch.no_grad():
        value = float(feedback_loss(setup, setup.student, batch, torch.device("cpu"), loss=recipe.loss))
    # Independent noise per image would make every negative orthogonal to the anchor: loss ~0.
    assert value > 0.3, value


def test_infonce_recipe_trains_with_a_second_view(make_recipe):
    result = run_training(
        make_recipe(steps=3, loss={"kind": "infonce", "temperature": 0.1, "mse_weight": 0.5})
    )
    assert result.steps_done == 3 and result.final_loss is not None
    assert torch.isfinite(torch.tensor(result.final_loss))


def test_speed_and_memory_knobs_do_not_change_the_math(make_recipe, tmp_path):
    plain = run_training(make_recipe(steps=2, output_dir=str(tmp_path / "plain")))
    a = load_file(plain.output_dir / "open_clip_model.safetensors")
    for knob in ("grad_checkpointing", "fuse_qkv", "channels_last"):
        other = run_training(make_recipe(steps=2, output_dir=str(tmp_path / knob), **{knob: True}))
        b = load_file(other.output_dir / "open_clip_model.safetensors")
        assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), knob
    setup = build_setup(make_recipe(grad_checkpointing=True), torch.device("cpu"), torch.float32)
    assert setup.bundle.model.visual.transformer.grad_checkpointing


@pytest.mark.parametrize(
    "anchor",
    [
        {"anchor_weight": 5.0},
        {"zeroshot_weight": 5.0, "zeroshot_classes": ["cat", "dog", "car", "tree"]},
        {"zeroshot_level_weight": 5.0, "zeroshot_classes": ["cat", "dog", "car", "tree"]},
    ],
    ids=["drift", "zeroshot", "level"],
)
def test_anchor_terms_are_zero_at_the_base_and_grow_as_the_tower_moves(make_recipe, make_batch, anchor):
    from trainer.train.loop import feedback_loss

    cpu = torch.device("cpu")
    plain_recipe, anchored_recipe = make_recipe(), make_recipe(loss=anchor)
    setup = build_setup(anchored_recipe, cpu, torch.float32)
    batch = make_batch(setup)
    with torch.no_grad():
        plain = feedback_loss(setup, setup.student, batch, cpu, loss=plain_recipe.loss)
        start = feedback_loss(setup, setup.student, batch, cpu, loss=anchored_recipe.loss)
    assert torch.allclose(plain, start, atol=1e-6)  # the tower is still the base: nothing to pay
    assert not any("reference" in key for key in setup.student.state_dict())  # checkpoints: one tower
    reference = {k: v.clone() for k, v in setup.student.anchor.reference.state_dict().items()}
    with torch.no_grad():
        setup.bundle.model.visual.proj.add_(0.5 * torch.randn_like(setup.bundle.model.visual.proj))
        moved_plain = feedback_loss(setup, setup.student, batch, cpu, loss=plain_recipe.loss)
        moved = feedback_loss(setup, setup.student, batch, cpu, loss=anchored_recipe.loss)
    assert float(moved - moved_plain) > 1e-4
    for key, value in setup.student.anchor.reference.state_dict().items():
        assert torch.equal(value, reference[key]), key  # the reference is a copy, not the tower
    result = run_training(make_recipe(steps=3, loss=anchor, lora={"r": 4, "alpha": 8.0}))
    assert result.steps_done == 3 and torch.isfinite(torch.tensor(result.final_loss))


def test_the_level_term_sees_a_shift_common_to_every_class_that_the_softmax_cannot():
    """An embedding that moves closer to every class text by the same amount keeps its softmax
    (KL 0) but ranks higher against other images for any of those texts: the level term pays."""
    from types import SimpleNamespace

    from trainer.recipes.schema import LossConfig
    from trainer.train.anchor import BaseAnchor

    classes, width, shift = 4, 8, 0.05
    base = torch.zeros(1, width)
    base[0, :classes] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    base[0, classes] = (1 - base.square().sum()).sqrt()
    moved = base.clone()
    moved[0, :classes] += shift  # + shift to the cosine with every class text (orthonormal texts)
    moved[0, classes] = (1 - moved[0, :classes].square().sum()).sqrt()  # still a unit vector

    class Frozen(torch.nn.Module):
        def forward(self, pixels):
            return SimpleNamespace(pooled=base)

    texts = torch.eye(width)[:classes]

    def anchor_loss(**weights):
        config = LossConfig(zeroshot_classes=["a", "b", "c", "d"], **weights)
        return float(BaseAnchor(Frozen(), config, texts, logit_scale=10.0)(moved, torch.zeros(1)))

    assert anchor_loss(zeroshot_weight=1.0) == pytest.approx(0.0, abs=1e-6)  # float32 rounding
    assert anchor_loss(zeroshot_level_weight=1.0) == pytest.approx((10.0 * shift) ** 2, rel=1e-4)


def test_zeroshot_classes_come_from_a_file_and_must_not_be_empty(make_recipe, tmp_path):
    from trainer.train.anchor import read_classes

    listing = tmp_path / "classes.txt"
    listing.write_text("cat\n\n dog \n")
    assert read_classes(str(listing)) == ["cat", "dog"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_classes(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="empty"):
        read_classes(["", ""])
    for weight in ("zeroshot_weight", "zeroshot_level_weight"):
        with pytest.raises(ValueError, match="zeroshot_classes"):
            build_setup(make_recipe(loss={weight: 1.0}), torch.device("cpu"), torch.float32)


def test_a_frozen_identity_projector_hands_the_tower_its_own_embedding(make_recipe, make_batch):
    """``projector_trainable: false``: the projector keeps its identity, so only the tower answers."""
    from trainer.train.loop import feedback_loss, make_optimizer

    cpu = torch.device("cpu")
    recipe = make_recipe(
        condition={"kind": "cls_only", "normalize": True},
        projector_init="identity",
        projector_trainable=False,
    )
    setup = build_setup(recipe, cpu, torch.float32)  # tiny world: tower and UNet both 32 wide
    params = [p for p in setup.student.parameters() if p.requires_grad]
    trainable = [n for n, p in setup.student.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("condition.projector.") for n in trainable)
    tower_before = setup.bundle.model.visual.conv1.weight.clone()
    optimizer = make_optimizer(recipe, params, cpu)
    for _ in range(2):
        feedback_loss(setup, setup.student, make_batch(setup), cpu).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.equal(setup.student.condition.projector.weight, torch.eye(32))
    assert not torch.equal(tower_before, setup.bundle.model.visual.conv1.weight)
    with pytest.raises(ValueError, match="projector_trainable"):
        make_recipe(projector_trainable=False, projector_warmup_steps=1)
