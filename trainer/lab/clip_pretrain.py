"""Pretraining the lab CLIP from scratch: open_clip's own ``CLIP`` and ``ClipLoss`` on biased captions.

The captions mention shape and colour almost always and the fine properties rarely. The result is
a CLIP that is good at coarse zero-shot and weak on MMVP-style pairs, the situation DIVA targets.

A web-scale CLIP's text tower knows words like "left" or "without" from many captions even where
its image tower never learned to see the difference; in one small joint run the two towers learn
the same things, so a text tower that cannot separate "pointing left" from "pointing right"
leaves no vision-only method anything to win. ``text_teacher_steps`` reproduces the web-scale
situation in two phases: a CLIP trained on full-detail captions lends its text tower, frozen, to
a fresh image tower trained on the biased captions (the reverse of LiT's locked image tower).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from trainer.backbones.factory import ClipBundle, eval_transform, list_architectures, save_open_clip
from trainer.lab.data import SceneSet, fresh_looks, make_twin_pairs, normalise
from trainer.lab.vocab import build_word_tokenizer
from trainer.scenes import CaptionBias

Progress = Callable[[int, int, float], None]  # (step, total, loss)


class ClipPretrainConfig(BaseModel):
    """Knobs of the tiny CLIP's contrastive pretraining."""

    model_config = ConfigDict(extra="forbid")

    architecture: str = "lab-clip"
    steps: int = Field(400, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    warmup_steps: int = Field(60, ge=0)
    bias: CaptionBias = Field(default_factory=lambda: CaptionBias.rare(0.02))
    text_teacher_steps: int = Field(
        400,
        ge=0,
        description="Steps of a full-caption CLIP whose frozen text tower the main run keeps (0 = off).",
    )
    text_teacher_bias: CaptionBias = Field(default_factory=CaptionBias.full)
    text_teacher_twins: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of each teacher batch made of twin pairs (two scenes that differ in one "
        "fine property: trainer.lab.data.make_twin_pairs), so the teacher's text tower must read "
        "word order and every fine word rather than a bag of words (0 = random batches).",
    )
    fresh_style_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of each image-phase batch redrawn at every step in a new random look "
        "(trainer.scenes.render.sample_style: size, place, canvas, edges, tilt), so no look is "
        "seen twice. The text teacher phase stays canonical: the text tower, and so lab-sd, is the "
        "same as without it. 0 = the batch as rendered.",
    )
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to zero: a pure function of the step."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def new_lab_clip(config: ClipPretrainConfig, folder: Path, seed: int) -> ClipBundle:
    """A randomly initialised CLIP whose open_clip folder already holds the word tokenizer."""
    import open_clip
    from open_clip.tokenizer import HFTokenizer

    list_architectures()  # registers the project's configs with open_clip
    model_cfg = open_clip.get_model_config(config.architecture)
    if model_cfg is None:
        raise ValueError(f"unknown lab architecture {config.architecture!r}")
    torch.manual_seed(seed)
    model = open_clip.create_model(config.architecture)
    folder.mkdir(parents=True, exist_ok=True)
    context = int(model_cfg["text_cfg"]["context_length"])
    build_word_tokenizer(folder, context)
    size = int(model_cfg["vision_cfg"]["image_size"])
    preprocess_cfg = {
        "size": size,
        "mode": "RGB",
        "mean": config.mean,
        "std": config.std,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }
    return ClipBundle(
        model=model,
        preprocess=eval_transform(preprocess_cfg),
        tokenizer=HFTokenizer(str(folder), context_length=context),
        architecture=config.architecture,
        model_cfg=dict(model_cfg),
        preprocess_cfg=preprocess_cfg,
    )


TEXT_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")


def pretrain_clip(
    config: ClipPretrainConfig,
    data: SceneSet,
    folder: Path | str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> ClipBundle:
    """Train a fresh lab CLIP on ``data`` and save it as an open_clip folder; return it in eval mode.

    With ``text_teacher_steps`` the text tower comes, frozen, from a first CLIP trained on
    ``text_teacher_bias`` captions, and only the image tower (and the temperature) learns from
    the biased ones. ``progress`` counts the steps of both phases.
    """
    folder = Path(folder)
    bundle = new_lab_clip(config, folder, seed)
    total = config.text_teacher_steps + config.steps
    if config.text_teacher_steps:
        teacher = train_text_teacher(config, data, folder, seed=seed, progress=progress, total=total)
        text_state = {k: v for k, v in teacher.model.state_dict().items() if k.split(".")[0] in TEXT_PARTS}
        bundle.model.load_state_dict(text_state, strict=False)
        for name, param in bundle.model.named_parameters():
            if name.split(".")[0] in TEXT_PARTS:
                param.requires_grad_(False)
    _contrastive(
        bundle,
        data,
        config,
        config.bias,
        config.steps,
        seed,
        progress,
        config.text_teacher_steps,
        total,
        fresh_share=config.fresh_style_share,
    )
    bundle.model.requires_grad_(True).eval()
    save_open_clip(bundle, folder)
    return bundle


def train_text_teacher(
    config: ClipPretrainConfig,
    data: SceneSet,
    folder: Path | str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    total: int | None = None,
) -> ClipBundle:
    """The teacher phase alone: a fresh CLIP trained ``text_teacher_steps`` on ``text_teacher_bias``
    captions (twin pairs as configured); ``folder`` receives its word tokenizer.

    :func:`pretrain_clip` keeps its text tower; a lab whose diffusion model reads captions through
    a text encoder of its own (``LabBuildConfig.sd_text_teacher``) hands it to lab-sd. The same
    config and seed give the same teacher either way.
    """
    if not config.text_teacher_steps:
        raise ValueError("a text teacher needs text_teacher_steps > 0")
    teacher = new_lab_clip(config, Path(folder), seed)
    size = int(data.images.shape[-1])
    twins = make_twin_pairs(len(data) // 2, seed, size) if config.text_teacher_twins else None
    _contrastive(
        teacher,
        data,
        config,
        config.text_teacher_bias,
        config.text_teacher_steps,
        seed,
        progress,
        0,
        total or config.text_teacher_steps,
        twins=(twins, config.text_teacher_twins) if twins is not None else None,
    )
    return teacher


def _contrastive(
    bundle: ClipBundle,
    data: SceneSet,
    config: ClipPretrainConfig,
    bias: CaptionBias,
    steps: int,
    seed: int,
    progress: Progress | None,
    done: int,
    total: int,
    twins: tuple[tuple[SceneSet, SceneSet], float] | None = None,
    fresh_share: float = 0.0,
) -> None:
    """AdamW + ``ClipLoss`` on the bundle's trainable parameters for ``steps`` steps.

    ``twins`` (twin pairs and a share of the batch) puts that share of each batch in pairs;
    ``fresh_share`` redraws that share in new looks (:func:`~trainer.lab.data.fresh_looks`) from
    a stream of its own, so the batches and captions are those of a run without it.
    """
    from open_clip.loss import ClipLoss

    model = bundle.model.train()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    loss_fn = ClipLoss()
    rng = np.random.default_rng([seed, done])
    gen = torch.Generator().manual_seed(seed + done)
    looks = np.random.default_rng([seed, done, 5])
    trainable = [p for _, p in params]
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, steps, config.lr, config.warmup_steps)
        pairs = round(config.batch_size * twins[1] / 2) if twins else 0
        index = torch.randint(len(data), (config.batch_size - 2 * pairs,), generator=gen)
        pixels = fresh_looks(data, index, fresh_share, looks)
        captions = data.captions(index, rng, bias)
        if twins:
            (firsts, seconds), pick = twins[0], torch.randint(len(twins[0][0]), (pairs,), generator=gen)
            pixels = torch.cat([pixels, firsts.images[pick], seconds.images[pick]])
            captions += firsts.captions(pick, rng, bias) + seconds.captions(pick, rng, bias)
        images = normalise(pixels, config.mean, config.std)
        texts = bundle.tokenizer(captions)
        image_features, text_features, logit_scale = model(images, texts)
        loss = loss_fn(image_features, text_features, logit_scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if progress is not None:
            progress(done + step + 1, total, loss.item())
    model.eval()
