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
    config = ClipPretrainConfig(steps=3, batch_size=16, warmup_steps=1)
    first = pretrain_clip(config, data, tmp_path / "a", seed=5).model.state_dict()
    second = pretrain_clip(config, data, tmp_path / "b", seed=5).model.state_dict()
    other = pretrain_clip(config, data, tmp_path / "c", seed=6).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


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
    assert diffusion.vae is None and diffusion.pixel_size == 32 and diffusion.prompt_length == 36

    lab = json.loads((out / "report" / "lab.json").read_text())
    assert set(lab["stage_seconds"]) >= {"pretrain-clip", "post-train", "evaluate-post"}
    assert set(lab["base"]["zeroshot"]) == {"shape", "color"}
    assert len(lab["post"]["mmvp_patterns"]) == 9
    assert (out / "report" / "mmvp_patterns.png").stat().st_size > 0
    assert (models / "lab-clip-diva" / "report" / "report.json").is_file()

    summary = CliRunner().invoke(app, ["lab", "summary", str(out)])
    assert summary.exit_code == 0, summary.output
    assert "| base |" in summary.output and "Orientation and Direction" in summary.output

    installed = install_builtin(models, tmp_path / "builtin")
    assert sorted(p.name for p in installed.iterdir()) == ["lab-clip-base", "lab-clip-diva", "lab-sd"]


def test_bad_build_config_is_rejected() -> None:
    from trainer.lab.pipeline import LabBuildConfig

    with pytest.raises(ValueError, match="clip_imgs"):
        LabBuildConfig(clip_imgs=10)
    with pytest.raises(ValueError, match="steps"):
        LabBuildConfig.quick(clip={"steps": 0})
