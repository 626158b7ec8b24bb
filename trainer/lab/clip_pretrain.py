"""Pretraining the lab CLIP from scratch: open_clip's own ``CLIP`` and ``ClipLoss`` on biased captions.

The captions mention shape and colour almost always and the fine properties rarely (rarely, not
never: the text tower must know the words, or no vision-only post-training could help). The result
is a CLIP that is good at coarse zero-shot and weak on MMVP-style pairs, the situation DIVA targets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from trainer.backbones.factory import ClipBundle, eval_transform, list_architectures, save_open_clip
from trainer.lab.data import SceneSet, normalise
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
    bias: CaptionBias = Field(default_factory=lambda: CaptionBias.rare(0.2))
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


def pretrain_clip(
    config: ClipPretrainConfig,
    data: SceneSet,
    folder: Path | str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> ClipBundle:
    """Train a fresh lab CLIP on ``data`` and save it as an open_clip folder; return it in eval mode."""
    from open_clip.loss import ClipLoss

    folder = Path(folder)
    bundle = new_lab_clip(config, folder, seed)
    model = bundle.model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    loss_fn = ClipLoss()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr, config.warmup_steps)
        index = torch.randint(len(data), (config.batch_size,), generator=gen)
        images = normalise(data.images[index], config.mean, config.std)
        texts = bundle.tokenizer(data.captions(index, rng, config.bias))
        image_features, text_features, logit_scale = model(images, texts)
        loss = loss_fn(image_features, text_features, logit_scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if progress is not None:
            progress(step + 1, config.steps, loss.item())
    model.eval()
    save_open_clip(bundle, folder)
    return bundle
