"""Pretraining the lab's text-to-image model: a pixel-space diffusers UNet taught by full captions.

Unlike the CLIP, this model's captions state every property (``CaptionBias.full()``), so to
denoise well it must render direction, count, position and state: that knowledge is what
diffusion feedback later pushes into the CLIP. At 32 px, pixel space is cheaper and sharper than a
tiny VAE, so there is no ``vae/`` (the feedback module then resizes crops to ``sample_size``).
The folder is the diffusers layout SD-2.1-base uses and loads with the same ``from_pretrained``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from trainer.feedback.diffusion import DEFAULT_PROMPT
from trainer.feedback.reference import SD_SCHEDULER
from trainer.lab.clip_pretrain import lr_at
from trainer.lab.data import SceneSet
from trainer.lab.vocab import BOS_ID, EOS_ID, PAD_ID, build_word_tokenizer, vocab_size
from trainer.scenes import CaptionBias

Progress = Callable[[int, int, float], None]  # (step, total, loss)


class DiffusionPretrainConfig(BaseModel):
    """Architecture and training knobs of the tiny text-to-image model."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(30, ge=0)
    sample_size: int = Field(32, ge=8)
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    attention_heads: int = Field(2, ge=1, description="Few, wide heads: tiny heads are slow on CPU.")
    text_width: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    max_length: int = Field(36, ge=8)
    prompt_drop: float = Field(
        0.1, ge=0, le=1, description="Share of steps' captions replaced by the fixed prompt."
    )


def new_diffusion(
    config: DiffusionPretrainConfig, seed: int
) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """Random UNet, text encoder and the SD-2.1 noise schedule (scaled-linear betas, epsilon)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    levels = len(config.block_out_channels)
    unet = UNet2DConditionModel(
        sample_size=config.sample_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=config.block_out_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        cross_attention_dim=config.text_width,
        attention_head_dim=config.attention_heads,  # diffusers' legacy name: it is the head count
        norm_num_groups=8,
        use_linear_projection=True,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size(),
            hidden_size=config.text_width,
            intermediate_size=4 * config.text_width,
            projection_dim=config.text_width,
            num_hidden_layers=config.text_layers,
            num_attention_heads=4,
            max_position_embeddings=config.max_length,
            pad_token_id=PAD_ID,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
        )
    )
    scheduler = DDPMScheduler(**SD_SCHEDULER)
    return unet, text_encoder, scheduler


def pretrain_diffusion(
    config: DiffusionPretrainConfig,
    data: SceneSet,
    folder: Path | str,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Train UNet + text encoder jointly on full-detail captions; write the diffusers folder."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_word_tokenizer(folder / "tokenizer", config.max_length)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    unet, text_encoder, scheduler = new_diffusion(config, seed)
    unet.train()
    text_encoder.train()
    params = [*unet.parameters(), *text_encoder.parameters()]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    full = CaptionBias.full()
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr, config.warmup_steps)
        index = torch.randint(len(data), (config.batch_size,), generator=gen)
        captions = [
            DEFAULT_PROMPT if rng.random() < config.prompt_drop else caption
            for caption in data.captions(index, rng, full)
        ]
        ids = tokenizer(
            captions, padding="max_length", max_length=config.max_length, truncation=True, return_tensors="pt"
        ).input_ids
        z0 = to_pixels(data.images[index], config.sample_size)
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (len(index),), generator=gen)
        noisy = scheduler.add_noise(z0, noise, t)
        pred = unet(noisy, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        loss = F.mse_loss(pred, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        if progress is not None:
            progress(step + 1, config.steps, loss.item())
    save_diffusion(folder, unet.eval(), text_encoder.eval(), scheduler)
    return folder


def to_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> [-1, 1] at ``size``, exactly as the feedback module makes z0."""
    x = images.float() / 255.0 * 2.0 - 1.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def save_diffusion(
    folder: Path, unet: torch.nn.Module, text_encoder: torch.nn.Module, scheduler: object
) -> None:
    import diffusers

    unet.save_pretrained(str(folder / "unet"))
    text_encoder.save_pretrained(str(folder / "text_encoder"))
    scheduler.save_pretrained(str(folder / "scheduler"))  # type: ignore[attr-defined]
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
