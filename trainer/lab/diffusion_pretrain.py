"""Pretraining the lab's text-to-image model: a pixel-space diffusers UNet taught by full captions.

Unlike the CLIP, this model's captions state every property (``caption_bias``: full by default), so to
denoise well it must render direction, count, position and state: that knowledge is what
diffusion feedback later pushes into the CLIP. At 24 px, pixel space is cheaper and sharper than a
tiny VAE, so there is no ``vae/`` (the feedback module then resizes crops to ``sample_size``, or
with ``space_to_depth`` to f times it and folds f x f pixel blocks into channels).
The folder is the diffusers layout SD-2.1-base uses and loads with the same ``from_pretrained``.

Its text encoder is the lab CLIP's own text tower, frozen (SD-2.1 likewise keeps OpenCLIP-H's),
and its condition (:func:`caption_condition`) is the caption's CLIP embedding added to every
token of the fixed prompt's embedding: exactly the shape of the CLS-only feedback condition
(GenHancer, DCR), with text where post-training puts the image. The UNet thus learns to read
the CLIP's joint space, where a fine property is the direction the text tower gives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainer.feedback.conditions import unit_scaled
from trainer.feedback.diffusion import DEFAULT_PROMPT, pixel_latents
from trainer.feedback.reference import SD_SCHEDULER
from trainer.lab.clip_pretrain import lr_at
from trainer.lab.data import SceneSet, fresh_looks, normalise
from trainer.scenes import CaptionBias

Progress = Callable[[int, int, float], None]  # (step, total, loss)


class DiffusionPretrainConfig(BaseModel):
    """Architecture and training knobs of the tiny text-to-image model."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(1800, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(30, ge=0)
    sample_size: int = Field(
        24,
        ge=8,
        description="The UNet's side in pixels. 24 px costs 0.56x the passes of 32 px "
        "(bench/lab_sd.py), and the time it frees pays for 1,800 pretraining steps and two "
        "timestep draws in post-training, which taught more than 32 px did on three seeds "
        "(docs/lab-log.md, ninth session).",
    )
    space_to_depth: int = Field(
        1,
        ge=1,
        le=4,
        description="Fold f x f pixel blocks into channels (3 f^2 of them): the UNet still works at "
        "sample_size but reads images at f times that, so detail a resize would erase (a dot, "
        "stripes, a small arrow's tip) reaches it, for the cost of a wider first and last "
        "convolution (trainer.feedback.diffusion.pixel_latents).",
    )
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    attention_heads: int = Field(2, ge=1, description="Few, wide heads: tiny heads are slow on CPU.")
    attention_levels: int | None = Field(
        1,
        ge=1,
        description="How many of the coarsest resolution levels carry cross-attention (1: only the "
        "6 px level at 24 px); None = all but the finest, which never does. Where the condition "
        "first enters also bounds post-training's backward pass: nothing finer than it needs a "
        "gradient.",
    )
    mid_block: bool = Field(False, description="A cross-attention block at the coarsest resolution.")
    caption_bias: CaptionBias = Field(
        default_factory=CaptionBias.full,
        description="How often lab-sd's captions state each property (default: every one, every "
        "time). Below 1 a fine property is sometimes left unsaid, as it is in an image embedding "
        "that does not see it, so lab-sd also learns what a condition without it means.",
    )
    prompt_drop: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of steps' captions replaced by the fixed prompt. The lab never samples "
        "with guidance, yet lab-sds trained without it taught less on both bases tried (1.4-5.6 points; "
        "on one, state pairs fell below the base in every run, as the feedback moved hollow objects' "
        "embeddings towards every statement). The likely reason: an image's embedding is never a "
        "caption's, and prompt-only captions teach lab-sd what a condition that does not state a "
        "property means (docs/lab-log.md, seventh session).",
    )
    film_condition: bool = Field(
        False,
        description="Also pool the condition into the time embedding (diffusers' addition_embed_type "
        "'text') and let every ResNet block scale and shift by it (scale_shift), as class-conditional "
        "diffusion models do; without it a condition shared by all tokens reaches the UNet only as a "
        "spatially uniform bias at the cross-attention layers.",
    )
    condition_noise: float = Field(
        0.0,
        ge=0,
        description="Conditioning augmentation (as in cascaded diffusion and unCLIP): Gaussian noise "
        "of a standard deviation drawn from [0, condition_noise) added to each caption's unit "
        "embedding (96 wide: 0.14 leaves a cosine of about 0.6 to it, what an image embedding has "
        "to its caption here). Feedback reads lab-sd at image embeddings, which are never exactly "
        "a caption's; 0 = clean captions.",
    )
    snr_gamma: float | None = Field(
        None,
        gt=0,
        description="Min-SNR-gamma loss weighting (Hang et al. 2023, diffusers' compute_snr): each "
        "sample's epsilon loss times min(SNR, gamma) / SNR. Low-noise steps, whose loss is large but "
        "which need no caption to denoise, then stop dominating the updates (None = plain MSE).",
    )
    fresh_style_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of each batch redrawn at every step in a new random look "
        "(trainer.lab.data.fresh_looks, as ClipPretrainConfig.fresh_style_share does for the CLIP), "
        "so lab-sd has seen the world the fresh-look CLIP has, and can denoise feedback images drawn "
        "in those looks. The captions never state a look. 0 = the batch as rendered.",
    )
    ema_decay: float = Field(
        0.0, ge=0, lt=1, description="EMA decay of the UNet's weights, saved instead of the last (0 = off)."
    )
    condition_source: Literal["caption", "image"] = Field(
        "caption",
        description="What the UNet learns to read. 'caption': full-detail captions through the CLIP's "
        "text tower (lab-sd). 'image': the frozen CLIP's own image embedding of the image it "
        "denoises, no caption at all: GenHancer's stage 1, a light denoiser trained from scratch "
        "on the visual CLS token with the CLIP frozen, which stage 2 (the post-training recipe, "
        "LoRA on the tower) then learns from. It knows only what the base embedding already "
        "carries, which is the question it answers (trainer.lab.successors).",
    )

    @model_validator(mode="after")
    def _finest_level_has_no_attention(self) -> DiffusionPretrainConfig:
        """Checked with the config, so ``diva lab build`` refuses it before any stage runs."""
        if self.attention_levels is not None and self.attention_levels >= len(self.block_out_channels):
            raise ValueError(
                f"attention_levels must be below the {len(self.block_out_channels)} levels: "
                "the finest level has none"
            )
        return self

    @property
    def cross_attention_levels(self) -> int:
        """``attention_levels`` with its default (all but the finest level) filled in."""
        return len(self.block_out_channels) - 1 if self.attention_levels is None else self.attention_levels


def new_unet(config: DiffusionPretrainConfig, cross_attention_dim: int, seed: int) -> torch.nn.Module:
    """A random pixel-space UNet whose cross-attention reads ``cross_attention_dim``-wide tokens."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    levels = len(config.block_out_channels)
    attention = config.cross_attention_levels
    plain = levels - attention
    film = (
        {
            "addition_embed_type": "text",
            "addition_embed_type_num_heads": config.attention_heads,
            "resnet_time_scale_shift": "scale_shift",
        }
        if config.film_condition
        else {}
    )
    return UNet2DConditionModel(
        sample_size=config.sample_size,
        in_channels=3 * config.space_to_depth**2,
        out_channels=3 * config.space_to_depth**2,
        layers_per_block=1,
        block_out_channels=config.block_out_channels,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * attention,
        up_block_types=("CrossAttnUpBlock2D",) * attention + ("UpBlock2D",) * plain,
        mid_block_type="UNetMidBlock2DCrossAttn" if config.mid_block else None,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=config.attention_heads,  # diffusers' legacy name: it is the head count
        norm_num_groups=8,
        use_linear_projection=True,
        **film,
    )


def tokenize(tokenizer, captions: list[str]) -> torch.Tensor:
    """Token ids padded to the tokenizer's length, as the CLIP and ``encode_prompt`` see them."""
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def embedding_condition(embeds: torch.Tensor, prompt_states: torch.Tensor) -> torch.Tensor:
    """lab-sd's condition [B, L, D]: a CLIP embedding's direction added to every prompt token.

    The one place that says how lab-sd reads the joint space. The embedding is L2-normalised
    (``unit_scaled``) because the CLIP compares directions only; post-training builds the same
    sum from the image's CLS token (``condition: {kind: cls_only, normalize: true}``).
    """
    return unit_scaled(embeds)[:, None, :] + prompt_states.to(embeds.dtype)


@torch.no_grad()
def caption_condition(text_encoder, ids: torch.Tensor, prompt_states: torch.Tensor) -> torch.Tensor:
    """:func:`embedding_condition` of each caption's CLIP text embedding (pretraining, probes)."""
    return embedding_condition(text_encoder(ids).text_embeds, prompt_states)


@torch.no_grad()
def image_condition(clip, images: torch.Tensor, prompt_states: torch.Tensor) -> torch.Tensor:
    """:func:`embedding_condition` of the frozen CLIP's image embeddings of uint8 ``images``: the
    condition post-training's ``cls_only`` condition hands the UNet, so a denoiser trained on it
    reads exactly what the feedback later gives it."""
    was_training = clip.model.training
    clip.model.eval()
    embeds = clip.model.encode_image(normalise(images, clip.mean, clip.std))
    clip.model.train(was_training)
    return embedding_condition(embeds, prompt_states)


def pretrain_diffusion(
    config: DiffusionPretrainConfig,
    data: SceneSet,
    folder: Path | str,
    clip,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Train the UNet on full-detail captions read by ``clip``'s frozen text tower; write the folder.

    ``clip`` is the lab CLIP bundle (its open_clip folder holds the word tokenizer); its text
    tower is stored as ``text_encoder/`` and its tokenizer as ``tokenizer/``.
    """
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel, compute_snr
    from transformers import AutoTokenizer

    from trainer.export.hf import hf_text_encoder
    from trainer.feedback.diffusion import encode_prompt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_encoder = hf_text_encoder(clip).requires_grad_(False)
    tokenizer_dir = folder / "tokenizer"
    clip.tokenizer.save_pretrained(str(tokenizer_dir))  # open_clip's HFTokenizer: the word tokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    prompt_states = encode_prompt(text_encoder, tokenizer, DEFAULT_PROMPT)
    unet = new_unet(config, int(prompt_states.shape[-1]), seed)
    scheduler = DDPMScheduler(**SD_SCHEDULER)
    unet.train()
    params = list(unet.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    ema = EMAModel(params, decay=config.ema_decay, use_ema_warmup=True) if config.ema_decay else None
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    looks = np.random.default_rng([seed, 5])  # a stream of its own: batches and captions stay the same
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, config.steps, config.lr, config.warmup_steps)
        index = torch.randint(len(data), (config.batch_size,), generator=gen)
        sampled = data.captions(index, rng, config.caption_bias)
        dropped = [rng.random() < config.prompt_drop for _ in sampled]
        pixels = fresh_looks(data, index, config.fresh_style_share, looks)
        if config.condition_source == "image":  # no caption is read: only the drop applies
            condition = image_condition(clip, pixels, prompt_states)
            condition[torch.tensor(dropped)] = prompt_states.to(condition.dtype)
        else:
            ids = tokenize(tokenizer, [DEFAULT_PROMPT if d else c for d, c in zip(dropped, sampled)])
            if config.condition_noise:
                with torch.no_grad():
                    embeds = unit_scaled(text_encoder(ids).text_embeds)
                scale = torch.rand((len(index), 1), generator=gen) * config.condition_noise
                embeds = embeds + scale * torch.randn(embeds.shape, generator=gen)
                condition = embedding_condition(embeds, prompt_states)
            else:
                condition = caption_condition(text_encoder, ids, prompt_states)
        z0 = to_pixels(pixels, unet.config)
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(scheduler.config.num_train_timesteps, (len(index),), generator=gen)
        noisy = scheduler.add_noise(z0, noise, t)
        pred = unet(noisy, t, encoder_hidden_states=condition).sample
        if config.snr_gamma is None:
            loss = F.mse_loss(pred, noise)
        else:
            snr = compute_snr(scheduler, t)
            weight = snr.clamp(max=config.snr_gamma) / snr
            loss = (F.mse_loss(pred, noise, reduction="none").flatten(1).mean(1) * weight).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        if ema is not None:
            ema.step(params)
        if progress is not None:
            progress(step + 1, config.steps, loss.item())
    if ema is not None:
        ema.copy_to(params)
    save_diffusion(folder, unet.eval(), text_encoder, scheduler)
    return folder


def to_pixels(images: torch.Tensor, unet_config) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> the z0 of lab-sd's UNet, exactly as the feedback module makes it."""
    return pixel_latents(images.float() / 255.0 * 2.0 - 1.0, unet_config)


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
        "text_encoder": ["transformers", type(text_encoder).__name__],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
