"""Recipes are strict data: presets validate, overrides are dotted keys, typos are errors."""

from __future__ import annotations

import pytest

from trainer.feedback.conditions import ClsPlusAll, ClsPlusRandom, PooledPlusAvgpool
from trainer.recipes import (
    PRESETS_DIR,
    RecipeError,
    dump_train_config,
    load_train_config,
    parse_override,
)

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_validates_and_round_trips(name, tmp_path):
    config = load_train_config(name)
    again = tmp_path / "again.yaml"
    again.write_text(dump_train_config(config))
    assert load_train_config(again) == config


def test_presets_follow_the_method_table():
    assert {"diva-openai-vit-l-14-224", "diva-openai-vit-l-14-336", "lab-diva"} <= set(PRESETS)
    openai = load_train_config("diva-openai-vit-l-14-224")
    assert openai.condition == ClsPlusRandom(n=76, combine="tokenwise")
    assert (openai.optim.lr, openai.optim.momentum, openai.optim.warmup_fraction) == (1e-4, 0.9, 0.005)
    assert (openai.batch_size, openai.grad_accum, openai.timestep_draws, openai.seed) == (16, 5, 2, 42)
    assert openai.crop_size == 512 and openai.crop_scale == (0.9, 1.0)
    assert isinstance(load_train_config("diva-metaclip-vit-h-14-224").condition, ClsPlusAll)
    siglip = load_train_config("diva-siglip-so400m-14-384").condition
    assert isinstance(siglip, PooledPlusAvgpool) and siglip.window == 10


def test_overrides_are_dotted_and_typed():
    config = load_train_config(
        "lab-diva",
        dict(
            parse_override(text)
            for text in ("steps=7", "optim.lr=1e-5", "condition={kind: cls_plus_all}", "lora.r=4")
        ),
    )
    assert config.steps == 7 and config.optim.lr == 1e-5
    assert isinstance(config.condition, ClsPlusAll) and config.lora.r == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stepz": 3}, "stepz: Extra inputs are not permitted"),
        ({"optim.lr": -1}, "optim.lr"),
        ({"condition.kind": "nope"}, "condition"),
        ({"crop_scale": [0.9, 1.5]}, "crop_scale"),
        ({"timestep_range": [0.6, 0.2]}, "timestep_range"),
        ({"timestep_sampling": "sobol"}, "timestep_sampling"),
        ({"projector_warmup_steps": 500, "steps": 100}, "projector_warmup_steps"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(RecipeError, match=message):
        load_train_config("lab-diva", overrides)


def test_missing_file_lists_presets_and_bad_override_syntax(tmp_path):
    with pytest.raises(RecipeError, match="lab-diva"):
        load_train_config(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="key=value"):
        parse_override("steps")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1,\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_train_config(broken)


def test_stratified_sampling_is_part_of_the_resume_fingerprint_only_when_chosen():
    from trainer.train.loop import fingerprint

    default = load_train_config("lab-diva")
    stratified = load_train_config("lab-diva", {"timestep_sampling": "stratified"})
    assert "timestep_sampling" not in fingerprint(default, 1)  # older checkpoints still resume
    assert fingerprint(stratified, 1)["timestep_sampling"] == "stratified"
