"""The miniature lab: vocabulary, deterministic pretraining, and `diva lab build --quick` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.lab.vocab import lab_vocabulary, vocab_size


def test_every_caption_word_is_in_the_vocabulary(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from trainer.lab.vocab import UNK_ID, build_word_tokenizer
    from trainer.scenes import PATTERNS, CaptionBias, draw_pair, sample_caption, sample_scene

    tokenizer = AutoTokenizer.from_pretrained(str(build_word_tokenizer(tmp_path, 36)))
    rng = np.random.default_rng(0)
    texts = [sample_caption(sample_scene(rng), rng, CaptionBias.full()) for _ in range(400)]
    texts += [s for p in PATTERNS for s in draw_pair(p, rng, size=32).statements]
    for text in texts:
        assert UNK_ID not in tokenizer(text).input_ids, text
    assert UNK_ID in tokenizer("a photo of a zebra").input_ids
    config = json.loads(Path("trainer/backbones/configs/lab-clip.json").read_text())
    assert config["text_cfg"]["vocab_size"] == vocab_size() == len(lab_vocabulary()) + 4


def test_clip_pretraining_is_deterministic_and_learns(tmp_path: Path) -> None:
    from trainer.lab.clip_pretrain import ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set

    data = make_scene_set(64, seed=3)
    config = ClipPretrainConfig(steps=3, batch_size=16, warmup_steps=1, text_teacher_steps=0)
    first = pretrain_clip(config, data, tmp_path / "a", seed=5).model.state_dict()
    second = pretrain_clip(config, data, tmp_path / "b", seed=5).model.state_dict()
    other = pretrain_clip(config, data, tmp_path / "c", seed=6).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_fresh_looks_change_only_the_image_phase(tmp_path: Path) -> None:
    """``fresh_style_share`` redraws the image phase's batches; the teacher's text tower, which
    lab-sd reads, is the one a canonical run gets, bit for bit."""
    from trainer.lab.clip_pretrain import TEXT_PARTS, ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set

    data = make_scene_set(64, seed=3)
    canonical = ClipPretrainConfig(steps=2, batch_size=16, warmup_steps=1, text_teacher_steps=2)
    fresh = canonical.model_copy(update={"fresh_style_share": 1.0})
    plain = pretrain_clip(canonical, data, tmp_path / "c", seed=5).model.state_dict()
    styled = pretrain_clip(fresh, data, tmp_path / "f", seed=5).model.state_dict()
    text_keys = [k for k in plain if k.split(".")[0] in TEXT_PARTS and k != "attn_mask"]
    assert text_keys and all(torch.equal(plain[k], styled[k]) for k in text_keys)
    assert not torch.equal(plain["visual.proj"], styled["visual.proj"])


def test_text_teacher_lends_its_frozen_text_tower(tmp_path: Path) -> None:
    """Two-phase pretraining: the text tower is exactly a full-caption CLIP's, the image tower new."""
    from trainer.lab.clip_pretrain import TEXT_PARTS, ClipPretrainConfig, pretrain_clip, train_text_teacher
    from trainer.lab.data import make_scene_set
    from trainer.scenes import CaptionBias

    data = make_scene_set(64, seed=3)
    two_phase = ClipPretrainConfig(steps=2, batch_size=16, warmup_steps=1, text_teacher_steps=3)
    teacher_only = ClipPretrainConfig(
        steps=3, batch_size=16, warmup_steps=1, bias=CaptionBias.full(), text_teacher_steps=0
    )
    student = pretrain_clip(two_phase, data, tmp_path / "s", seed=5).model.state_dict()
    teacher = pretrain_clip(teacher_only, data, tmp_path / "t", seed=5).model.state_dict()
    text_keys = [k for k in student if k.split(".")[0] in TEXT_PARTS and k != "attn_mask"]
    assert text_keys and all(torch.equal(student[k], teacher[k]) for k in text_keys)
    assert not torch.equal(student["visual.proj"], teacher["visual.proj"])
    # the teacher phase alone (what a lab-sd with a text encoder of its own reads through) is the same
    alone = train_text_teacher(two_phase, data, tmp_path / "alone", seed=5).model.state_dict()
    assert all(torch.equal(student[k], alone[k]) for k in text_keys)


def test_quick_build_end_to_end(tmp_path: Path) -> None:
    """`diva lab build --quick`: every stage runs, models load back, the report is written."""
    from typer.testing import CliRunner

    from cli.main import app
    from trainer.artifacts import ModelArtifact, list_artifacts
    from trainer.backbones.factory import create_clip
    from trainer.feedback.diffusion import FrozenDiffusion
    from trainer.lab.pipeline import install_builtin

    out = tmp_path / "lab"
    threads = torch.get_num_threads()
    try:  # one thread: small ops on a shared CPU are faster without oversubscription
        result = CliRunner().invoke(
            app, ["lab", "build", "--quick", "--seed", "1", "--out", str(out), "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    models = out / "models"
    assert [a.id for a in list_artifacts(models)] == ["lab-clip-base", "lab-clip-diva"]
    diva = ModelArtifact(models / "lab-clip-diva").read_manifest()
    assert diva.base == "lab-clip-base" and diva.recipe == "lab-diva" and diva.image_size == 64
    assert 0 <= diva.eval["lab"]["mmvp_average"] <= 100

    base_bundle = create_clip(str(models / "lab-clip-base"))
    diva_bundle = create_clip(str(models / "lab-clip-diva"))
    text = base_bundle.tokenizer(["a photo of a red circle"])
    assert text.shape == (1, 36) and int(text.max()) < vocab_size()
    with torch.no_grad():
        embeddings = [b.model.encode_text(text) for b in (base_bundle, diva_bundle)]
    assert torch.allclose(*embeddings), "post-training must leave the text tower untouched"
    changed = [
        k
        for k, v in diva_bundle.model.state_dict().items()
        if not torch.equal(v, base_bundle.model.state_dict()[k])
    ]
    assert changed and all(k.startswith("visual.") for k in changed)

    diffusion = FrozenDiffusion.load(models / "lab-sd")
    assert diffusion.vae is None and diffusion.pixel_size == 24 and diffusion.prompt_length == 36
    # lab-sd reads captions with the base CLIP's own text tower (stored as its text_encoder/)
    from transformers import CLIPTextModelWithProjection

    sd_text = CLIPTextModelWithProjection.from_pretrained(str(models / "lab-sd"), subfolder="text_encoder")
    with torch.no_grad():
        assert torch.allclose(sd_text(text).text_embeds, embeddings[0], atol=1e-5)
    assert diffusion.cross_attention_dim == base_bundle.embed_dim
    from trainer.lab.probe import caption_sensitivity

    low_noise = caption_sensitivity(models / "lab-sd", pairs_per_pattern=1, draws=2, timesteps=(0, 100))
    assert len(low_noise) == 9 and all(0 <= v <= 100 for v in low_noise.values())

    lab = json.loads((out / "report" / "lab.json").read_text())
    ceiling = lab["probes"]["feedback_ceiling"]
    assert len(ceiling) == 9 and all(
        0 <= v["before"] <= 100 and 0 <= v["after"] <= 100 for v in ceiling.values()
    )
    assert set(lab["stage_seconds"]) >= {"pretrain-clip", "post-train", "evaluate-post"}
    assert lab["machine"]["logical_cpus"] >= 1 and lab["machine"]["cpu_capability"]
    assert set(lab["base"]["zeroshot"]) == {"shape", "color"}
    assert len(lab["post"]["mmvp_patterns"]) == 9
    assert (out / "report" / "mmvp_patterns.png").stat().st_size > 0
    assert (models / "lab-clip-diva" / "report" / "report.json").is_file()

    held = lab["held_out"]
    assert held["protocol"]["test_seeds"] == [7001] and held["protocol"]["development_seed"] == 2024
    assert held["draws"][0]["gain"] == held["draws"][0]["post"] - held["draws"][0]["base"]
    assert "Held-out: test draws [7001]" in result.output and (out / "report" / "heldout.md").is_file()
    plain = lab["plain"]
    assert set(plain) == {"filled", "hollow"} and set(plain["filled"]) == {"lab-clip-base", "lab-clip-diva"}
    assert all(0 <= m["top1"] <= 100 for kind in plain.values() for m in kind.values())
    assert "| filled | lab-clip-diva |" in result.output and (out / "report" / "plain.md").is_file()

    summary = CliRunner().invoke(app, ["lab", "summary", str(out)])
    assert summary.exit_code == 0, summary.output
    assert "| base |" in summary.output and "Orientation and Direction" in summary.output
    assert "**Held-out** (test draws [7001]" in summary.output
    assert "| filled |" in summary.output and "| hollow |" in summary.output

    installed = install_builtin(models, tmp_path / "builtin")
    assert sorted(p.name for p in installed.iterdir()) == ["lab-clip-base", "lab-clip-diva", "lab-sd"]

    # --reuse: a new post-training of the same base and lab-sd, nothing pretrained again
    again = tmp_path / "again"
    args = ["lab", "build", "--quick", "--seed", "1", "--out", str(again), "--threads", "1"]
    rerun = CliRunner().invoke(app, [*args, "--reuse", str(installed), "--set", "steps=2"])
    assert rerun.exit_code == 0, rerun.output
    for model_id, weights in (("lab-clip-base", "open_clip"), ("lab-sd", "unet")):
        for original in (installed / model_id / weights).glob("*.safetensors"):
            assert (
                original.read_bytes() == (again / "models" / model_id / weights / original.name).read_bytes()
            )
    relab = json.loads((again / "report" / "lab.json").read_text())
    assert relab["base"] == lab["base"] and relab["config"]["reuse"] == str(installed)
    missing = CliRunner().invoke(app, [*args, "--reuse", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "to reuse" in missing.output
    assert (again / "models" / "lab-clip-diva").is_dir(), "a refused build leaves the last one as it was"


def test_pair_accuracy_needs_both_statements_right() -> None:
    from trainer.lab.probe import pair_accuracy

    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2)
    images = torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.1, 1.0], [1.0, 0.1]])
    assert pair_accuracy(images, text) == 50.0  # first pair right, second swapped
    text3 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    typical = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.4, 1.0]])
    assert pair_accuracy(typical, text3) == 0.0  # image 1 wins both statements: the pair fails


def test_lab_sd_reads_embeddings_as_directions() -> None:
    from trainer.lab.diffusion_pretrain import embedding_condition

    prompt = torch.randn(1, 5, 4)
    embeds = torch.tensor([[3.0, 0.0, 0.0, 4.0]])
    condition = embedding_condition(embeds, prompt)
    assert condition.shape == (1, 5, 4)
    assert torch.allclose(condition, embedding_condition(10 * embeds, prompt))
    assert torch.allclose((condition - prompt).norm(dim=-1), torch.full((1, 5), 2.0))


def test_lab_sd_attention_levels_bound_the_condition_gradient() -> None:
    """With cross-attention at the coarsest level only, the condition still gets a gradient and
    the finer levels (plain blocks) carry no attention; the finest level can never have any."""
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, new_unet

    config = DiffusionPretrainConfig(
        sample_size=16, block_out_channels=(8, 16, 16), attention_levels=1, mid_block=False
    )
    unet = new_unet(config, cross_attention_dim=6, seed=0)
    assert unet.config.down_block_types == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    assert unet.config.up_block_types == ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    assert unet.mid_block is None
    condition = torch.randn(2, 3, 6, requires_grad=True)
    noisy, timesteps = torch.randn(2, 3, 16, 16), torch.tensor([5, 900])
    unet(noisy, timesteps, encoder_hidden_states=condition).sample.sum().backward()
    assert condition.grad is not None and condition.grad.abs().sum() > 0

    default = new_unet(config.model_copy(update={"attention_levels": None, "mid_block": True}), 6, seed=0)
    assert default.config.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert default.mid_block is not None
    with pytest.raises(ValueError, match="finest level"):
        DiffusionPretrainConfig(block_out_channels=(8, 16, 16), attention_levels=3)


def test_space_to_depth_lab_sd_loads_for_feedback_at_twice_its_size(tmp_path: Path) -> None:
    """lab-sd with ``space_to_depth: 2`` is a diffusers folder the trainer reads at 2x sample_size."""
    from trainer.feedback import FrozenDiffusion
    from trainer.lab.clip_pretrain import ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, pretrain_diffusion, to_pixels

    data = make_scene_set(16, seed=1)
    clip = pretrain_clip(
        ClipPretrainConfig(steps=1, batch_size=4, warmup_steps=1, text_teacher_steps=0), data, tmp_path / "c"
    )
    config = DiffusionPretrainConfig(
        steps=2, batch_size=2, warmup_steps=1, sample_size=32, space_to_depth=2, block_out_channels=(8, 16)
    )
    folder = pretrain_diffusion(config, data, tmp_path / "sd", clip, seed=0)
    diffusion = FrozenDiffusion.load(folder)
    assert diffusion.pixel_size == 64 and diffusion.latent_shape(64) == (12, 32, 32)
    z0 = diffusion.latents(data.images[:2].float() / 255.0)
    assert torch.allclose(z0, to_pixels(data.images[:2], diffusion.unet.config))
    assert torch.allclose(torch.nn.functional.pixel_shuffle(z0, 2), data.images[:2].float() / 255.0 * 2 - 1)


@pytest.fixture(scope="module")
def tiny_lab_sd(tmp_path_factory):
    """Train a tiny lab-sd with config changes on one small scene set; return its UNet weights."""
    from diffusers import UNet2DConditionModel

    from trainer.lab.clip_pretrain import ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, pretrain_diffusion

    root = tmp_path_factory.mktemp("tiny-lab-sd")
    data = make_scene_set(16, seed=1)
    clip = pretrain_clip(
        ClipPretrainConfig(steps=1, batch_size=4, warmup_steps=1, text_teacher_steps=0), data, root / "clip"
    )
    # Adam's first updates are near sign(gradient), alike for small changes of the loss: a few steps
    tiny = {"steps": 6, "batch_size": 4, "warmup_steps": 1, "sample_size": 16, "block_out_channels": (8, 16)}

    def train(name: str, **changes) -> dict[str, torch.Tensor]:
        config = DiffusionPretrainConfig(**tiny, **changes)
        folder = pretrain_diffusion(config, data, root / name, clip)
        return UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet").state_dict()

    return train


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_min_snr_weighting_changes_what_lab_sd_learns(tiny_lab_sd) -> None:
    """``snr_gamma`` reweights the epsilon loss (same draws, other weights): deterministic, and not
    the plain run; a gamma above every timestep's SNR weights all of them 1, the plain loss."""
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig

    plain, snr, again = tiny_lab_sd("p"), tiny_lab_sd("s", snr_gamma=5.0), tiny_lab_sd("a", snr_gamma=5.0)
    flat = tiny_lab_sd("f", snr_gamma=1e6)
    assert _equal(snr, again) and not _equal(snr, plain)
    assert all(torch.allclose(flat[k], plain[k], atol=1e-6) for k in plain)
    with pytest.raises(ValueError):
        DiffusionPretrainConfig(snr_gamma=0)


def test_lab_sd_condition_noise_is_deterministic_augmentation(tiny_lab_sd) -> None:
    noisy = tiny_lab_sd("noisy", condition_noise=0.2)
    assert _equal(noisy, tiny_lab_sd("noisy-again", condition_noise=0.2))
    assert not _equal(noisy, tiny_lab_sd("clean"))


def test_lab_sd_fresh_looks_are_deterministic_and_change_what_it_learns(tiny_lab_sd) -> None:
    """``fresh_style_share`` redraws lab-sd's batches from a stream of its own: the same run twice
    is the same UNet, and not the canonical one."""
    fresh = tiny_lab_sd("fresh", fresh_style_share=1.0)
    assert _equal(fresh, tiny_lab_sd("fresh-again", fresh_style_share=1.0))
    assert not _equal(fresh, tiny_lab_sd("canonical"))


def test_feedback_images_in_fresh_looks_keep_their_scenes(tmp_path: Path) -> None:
    """``feedback_style_share`` draws about that share of the feedback images in a random look;
    the scenes come from the same stream, so the canonical ones are the canonical set's, byte
    for byte, and share 0 is that set."""
    from PIL import Image

    from trainer.lab.pipeline import write_feedback_images

    def pixels(folder: Path) -> list[np.ndarray]:
        return [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]

    canonical = pixels(write_feedback_images(tmp_path / "canonical", 40, seed=3, size=32))
    styled = pixels(write_feedback_images(tmp_path / "styled", 40, seed=3, size=32, style_share=0.5))
    same = [np.array_equal(a, b) for a, b in zip(canonical, styled)]
    assert len(styled) == 40 and 0.25 < 1 - np.mean(same) < 0.75
    again = pixels(write_feedback_images(tmp_path / "again", 40, seed=3, size=32, style_share=0.5))
    assert all(np.array_equal(a, b) for a, b in zip(styled, again))


def test_lab_sd_caption_bias_leaves_fine_properties_unsaid(tiny_lab_sd) -> None:
    from trainer.scenes import CaptionBias

    full = tiny_lab_sd("full")
    assert _equal(full, tiny_lab_sd("explicit", caption_bias=CaptionBias.full()))
    assert not _equal(full, tiny_lab_sd("half", caption_bias=CaptionBias.rare(0.5, common=1.0)))


def test_default_lab_sd_is_24_px_with_the_condition_at_the_coarsest_level() -> None:
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, new_unet

    unet = new_unet(DiffusionPretrainConfig(), cross_attention_dim=8, seed=0)
    assert unet.config.sample_size == 24 and unet.mid_block is None
    assert unet.config.down_block_types == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")


@pytest.mark.parametrize(
    ("name", "draws", "attention_blocks", "has_mid"),
    [("32px-fast.yaml", {"timestep_draws": 1}, 1, False), ("32px.yaml", {}, 2, True)],
)
def test_earlier_builds_ship_as_configs(name: str, draws: dict, attention_blocks: int, has_mid: bool) -> None:
    import yaml

    from trainer.lab.diffusion_pretrain import new_unet
    from trainer.lab.pipeline import LabBuildConfig

    path = Path(__file__).resolve().parents[3] / "trainer" / "lab" / "configs" / name
    config = LabBuildConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.recipe_overrides == draws
    assert config.diffusion.sample_size == 32 and config.diffusion.steps == 1200
    unet = new_unet(config.diffusion, cross_attention_dim=8, seed=0)
    assert (unet.mid_block is not None) == has_mid
    assert sum(kind.startswith("CrossAttn") for kind in unet.config.down_block_types) == attention_blocks


def test_every_shipped_build_config_validates(tmp_path: Path) -> None:
    """A config under trainer/lab/configs is a documented command; a renamed field must fail here."""
    import yaml

    from trainer.lab.pipeline import LabBuildConfig, lab_train_config
    from trainer.recipes.schema import load_train_config

    folder = Path(__file__).resolve().parents[3] / "trainer" / "lab" / "configs"
    configs = {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))}
    expected = {
        "32px.yaml",
        "32px-fast.yaml",
        "fresh-looks.yaml",
        "fresh-world.yaml",
        "text-teacher.yaml",
        "sd-text-teacher.yaml",
    }
    assert expected <= set(configs)
    for name, data in configs.items():
        config = LabBuildConfig.model_validate(data)
        # post-training runs last, after an hour of pretraining: a bad override must fail here
        lab_train_config(config, tmp_path / name)
    own_text = LabBuildConfig.model_validate(configs["sd-text-teacher.yaml"])
    assert own_text.clip == LabBuildConfig().clip, "the base is the default build's"
    assert own_text.sd_text_teacher is not None and own_text.sd_text_teacher.text_teacher_twins > 0
    recipe = lab_train_config(own_text, tmp_path / "own")
    assert recipe.projector_init == "text" and Path(recipe.projector_captions).is_file()
    fresh = LabBuildConfig.model_validate(configs["fresh-looks.yaml"])
    assert fresh.clip.fresh_style_share > 0 and fresh.clip.steps > LabBuildConfig().clip.steps
    assert fresh.diffusion == LabBuildConfig().diffusion, "lab-sd is the default build's"
    world = LabBuildConfig.model_validate(configs["fresh-world.yaml"])
    assert world.clip == fresh.clip, "the fresh-look CLIP of fresh-looks.yaml"
    assert world.diffusion.fresh_style_share > 0 and world.feedback_style_share > 0
    teacher = LabBuildConfig.model_validate(configs["text-teacher.yaml"])
    assert teacher.clip.text_teacher_twins > 0
    assert teacher.clip.text_teacher_steps > LabBuildConfig().clip.text_teacher_steps
    assert load_train_config(teacher.recipe, teacher.recipe_overrides).optim.lr == 1e-3


def test_bad_build_config_is_rejected() -> None:
    from trainer.lab.pipeline import LabBuildConfig

    with pytest.raises(ValueError, match="clip_imgs"):
        LabBuildConfig(clip_imgs=10)
    with pytest.raises(ValueError, match="steps"):
        LabBuildConfig.quick(clip={"steps": 0})


def test_lab_recipe_distils_zero_shot_over_the_lab_benchmark_classes():
    from trainer.lab.evaluate import CLASSNAMES
    from trainer.recipes.schema import load_train_config

    loss = load_train_config("lab-diva").loss
    assert loss.zeroshot_weight > 0 and loss.zeroshot_level_weight > 0
    assert loss.zeroshot_classes == [name for task in CLASSNAMES.values() for name in task.values()]


def test_film_lab_sd_reads_the_condition_in_every_block_and_saves_its_ema(tmp_path: Path) -> None:
    """``film_condition``: the embedding reaches the ResNet blocks through the time embedding, and
    the folder still loads through the SD-2.1 path; ``ema_decay``: the averaged weights are saved."""
    from diffusers import UNet2DConditionModel

    from trainer.feedback.diffusion import FrozenDiffusion
    from trainer.lab.clip_pretrain import ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, new_unet, pretrain_diffusion

    data = make_scene_set(32, seed=2)
    clip = pretrain_clip(
        ClipPretrainConfig(steps=1, batch_size=8, warmup_steps=0, text_teacher_steps=0), data, tmp_path / "c"
    )
    tiny = {"steps": 3, "batch_size": 4, "warmup_steps": 0, "sample_size": 16, "block_out_channels": (8, 16)}
    film = DiffusionPretrainConfig(**tiny, film_condition=True, ema_decay=0.9)
    folder = pretrain_diffusion(film, data, tmp_path / "sd", clip, seed=1)
    diffusion = FrozenDiffusion.load(folder)
    assert diffusion.unet.config.addition_embed_type == "text"
    assert diffusion.unet.config.resnet_time_scale_shift == "scale_shift"

    # the embedding's gradient flows through the pooled time embedding too
    unet = new_unet(film, clip.embed_dim, seed=0)
    condition = torch.randn(2, 5, clip.embed_dim)
    unet(
        torch.randn(2, 3, 16, 16), torch.tensor([10, 500]), encoder_hidden_states=condition
    ).sample.sum().backward()
    assert unet.add_embedding.proj.weight.grad.abs().sum() > 0

    # EMA: the saved weights are neither the initial ones nor the last step's
    plain = pretrain_diffusion(
        DiffusionPretrainConfig(**tiny, film_condition=True), data, tmp_path / "plain", clip, seed=1
    )
    saved = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet").state_dict()
    last = UNet2DConditionModel.from_pretrained(str(plain), subfolder="unet").state_dict()
    initial = new_unet(film, clip.embed_dim, seed=1).state_dict()
    key = "conv_in.weight"
    assert not torch.equal(saved[key], last[key]) and not torch.equal(saved[key], initial[key])


def test_feedback_ceiling_probe_is_opt_in() -> None:
    """A default build skips the costly ceiling probe; the cheap probes still run on every build."""
    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.backbones.factory import create_clip
    from trainer.lab.pipeline import CEILING_STEPS, LabBuildConfig, run_probes

    config = LabBuildConfig(probe_pairs=1)
    assert config.ceiling_steps == 0 and CEILING_STEPS > 0
    base = create_clip(str(BUILTIN_MODELS_DIR / "lab-clip-base" / "open_clip"))
    probes = run_probes(config, BUILTIN_MODELS_DIR / "lab-sd", base, base)
    assert "feedback_ceiling" not in probes
    assert len(probes["diffusion_caption_sensitivity"]) == 9 and len(probes["text_cosine_post"]) == 9
    assert len(probes["feedback_alignment"]) == 9
    assert all(0 <= v <= 100 for v in probes["feedback_alignment"].values())
    asked = run_probes(
        config.model_copy(update={"ceiling_steps": 1}), BUILTIN_MODELS_DIR / "lab-sd", base, base
    )
    assert len(asked["feedback_ceiling"]) == 9


def test_feedback_alignment_sees_the_builtin_lab_sd_teach_coarse_properties() -> None:
    """At the built-in base, lab-sd's gradient moves embeddings towards their own statement on
    structure (stripes, which lab-sd reads at 95-100%) in most pairs; a sign slip would give ~0%."""
    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.backbones.factory import create_clip
    from trainer.lab.probe import feedback_alignment

    base = create_clip(str(BUILTIN_MODELS_DIR / "lab-clip-base" / "open_clip"))
    aligned = feedback_alignment(BUILTIN_MODELS_DIR / "lab-sd", base, pairs_per_pattern=10, draws=4)
    assert set(aligned) >= {"Structural Characteristics", "Orientation and Direction"}
    assert aligned["Structural Characteristics"] >= 75, aligned


def test_teacher_twins_are_hard_negatives_in_the_teacher_batch(tmp_path: Path) -> None:
    """With ``text_teacher_twins`` the teacher trains on twin pairs, every fine property in turn."""
    from trainer.lab.clip_pretrain import TEXT_PARTS, ClipPretrainConfig, pretrain_clip
    from trainer.lab.data import make_scene_set, make_twin_pairs
    from trainer.scenes import PROPERTIES, describe
    from trainer.scenes.world import VARIED_PROPERTIES

    firsts, seconds = make_twin_pairs(2 * len(VARIED_PROPERTIES), seed=3, size=32)
    assert firsts.images.shape == seconds.images.shape == (14, 3, 32, 32)
    words = set(PROPERTIES)
    assert all(describe(a, words) != describe(b, words) for a, b in zip(firsts.scenes, seconds.scenes))
    swapped = [a.things == b.things[::-1] for a, b in zip(firsts.scenes, seconds.scenes)]
    assert sum(swapped) == 2, "each property gets its turn, a two-object swap included"
    again = make_twin_pairs(2 * len(VARIED_PROPERTIES), seed=3, size=32)[1]
    assert torch.equal(seconds.images, again.images)

    data = make_scene_set(32, seed=3)
    config = ClipPretrainConfig(steps=1, batch_size=16, warmup_steps=1, text_teacher_steps=3)
    plain = pretrain_clip(config, data, tmp_path / "p", seed=5).model.state_dict()
    with_twins = config.model_copy(update={"text_teacher_twins": 0.5})
    first = pretrain_clip(with_twins, data, tmp_path / "a", seed=5).model.state_dict()
    second = pretrain_clip(with_twins, data, tmp_path / "b", seed=5).model.state_dict()
    text_keys = [k for k in plain if k.split(".")[0] in TEXT_PARTS and k != "attn_mask"]
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], plain[k]) for k in text_keys)
    with pytest.raises(ValueError):
        ClipPretrainConfig(text_teacher_twins=1.5)


def test_quick_build_with_a_diffusion_text_encoder_of_its_own(tmp_path: Path) -> None:
    """``sd_text_teacher``: lab-sd reads captions through a teacher of its own, the base keeps its
    tower, and post-training bridges the two with a projector fitted on the build's captions."""
    from transformers import CLIPTextModelWithProjection

    from trainer.backbones.factory import create_clip
    from trainer.lab.pipeline import BRIDGE_CAPTIONS, DIVA_ID, LabBuildConfig, build_lab

    teacher = {"text_teacher_steps": 6, "text_teacher_twins": 0.5, "batch_size": 32, "warmup_steps": 1}
    config = LabBuildConfig.quick(
        seed=2,
        out=tmp_path / "lab",
        sd_text_teacher=teacher,
        bridge_captions=50,
        recipe_overrides={"projector_init": "text"},
        heldout_seeds=(),
        plain_per_shape=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = build_lab(config)
    finally:
        torch.set_num_threads(threads)
    captions = (config.out / "runs" / DIVA_ID / BRIDGE_CAPTIONS).read_text().splitlines()
    assert len(captions) == 50
    base = create_clip(str(result.models_dir / "lab-clip-base"))
    sd_text = CLIPTextModelWithProjection.from_pretrained(
        str(result.models_dir / "lab-sd"), subfolder="text_encoder"
    )
    text = base.tokenizer(captions[:4])
    with torch.no_grad():
        assert not torch.allclose(sd_text(text).text_embeds, base.model.encode_text(text), atol=1e-3)
    lab = json.loads((result.report_dir / "lab.json").read_text())
    assert len(lab["probes"]["feedback_alignment"]) == 9 and len(lab["probes"]["feedback_ceiling"]) == 9
    assert lab["config"]["sd_text_teacher"]["text_teacher_steps"] == 6
