"""The frozen text-to-image model that gives feedback, loaded from a diffusers folder.

Everything here is frozen (``requires_grad_(False)``, eval mode); gradients flow *through* the
UNet into the condition only. Normalisation is explicit: this module takes raw pixels in
``[0, 1]`` and maps them to ``[-1, 1]`` itself, so the CLIP tower's mean/std never leak in.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_PROMPT = "a photo of a ."


def space_to_depth_factor(unet_config: Any) -> int:
    """f of a pixel-space UNet whose every pixel holds an f x f block of RGB pixels (3 f^2 channels).

    A small pixel-space UNet is cheapest at a low ``sample_size``, but a resize to it erases
    detail (a dot of two pixels, a letter). Folding f x f blocks into channels keeps every pixel
    of an image f times larger for the cost of a wider first and last convolution.
    """
    channels = int(unet_config.in_channels)
    factor = math.isqrt(channels // 3)
    if channels % 3 or factor * factor * 3 != channels:
        raise DiffusionFolderError(f"a pixel-space UNet needs 3 f^2 input channels, not {channels}")
    return factor


def pixel_latents(x: torch.Tensor, unet_config: Any) -> torch.Tensor:
    """z0 of a pixel-space UNet from images in [-1, 1]: resized to ``sample_size * f``, f x f
    blocks folded into channels (:func:`space_to_depth_factor`). The one place this is done."""
    factor = space_to_depth_factor(unet_config)
    size = int(unet_config.sample_size) * factor
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.pixel_unshuffle(x, factor) if factor > 1 else x


class DiffusionFolderError(ValueError):
    """The diffusion folder is missing or lacks a required part; the message names it."""


def check_diffusion_folder(folder: Path | str) -> Path:
    """Return ``folder`` if it has the parts this module needs, else raise naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DiffusionFolderError(f"diffusion folder {folder} does not exist")
    missing = [
        part for part in ("unet", "scheduler", "text_encoder", "tokenizer") if not (folder / part).is_dir()
    ]
    if missing:
        raise DiffusionFolderError(
            f"diffusion folder {folder} lacks {', '.join(missing)}/ (expected the diffusers layout: "
            "unet/, scheduler/, text_encoder/, tokenizer/, optional vae/)"
        )
    return folder


@dataclass
class FrozenDiffusion:
    """UNet + scheduler + optional VAE + the encoded fixed prompt."""

    unet: torch.nn.Module
    scheduler: Any
    vae: torch.nn.Module | None
    prompt_embeds: torch.Tensor  # [1, L, C]: the frozen text embedding of the fixed prompt
    folder: Path
    channels_last: bool = False  # feed the UNet channels_last inputs (set with its weights' format)

    def set_channels_last(self) -> None:
        """channels_last weights and inputs for the convolutions (faster cuDNN kernels on GPUs)."""
        for module in (self.unet, self.vae):
            if module is not None:
                module.to(memory_format=torch.channels_last)
        self.channels_last = True

    def compile(self, mode: str = "default") -> None:
        """``torch.compile`` the UNet and the VAE encoder (the two heavy frozen parts of a step)."""
        self.unet = torch.compile(self.unet, mode=mode)
        if self.vae is not None:
            self.vae.encoder = torch.compile(self.vae.encoder, mode=mode)

    def fuse_projections(self) -> None:
        """One matmul for q/k/v (self-attention) and k/v (cross-attention): same math, fewer kernels."""
        self.unet.fuse_qkv_projections()

    def _frozen_precision(self, module: torch.nn.Module):
        """Low-precision frozen weights run in that precision, outside any autocast region.

        Under autocast, GroupNorm is promoted to fp32 and its fp32 activations are what backward
        keeps: the frozen UNet in pure bf16 roughly halves activation memory and traffic. Weights
        in fp32 (CPU, the replica) run as the surrounding autocast says.
        """
        dtype = next(module.parameters()).dtype
        if dtype in (torch.bfloat16, torch.float16):
            return torch.autocast(device_type=next(module.parameters()).device.type, enabled=False)
        return contextlib.nullcontext()

    @classmethod
    def load(
        cls,
        folder: Path | str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        prompt: str = DEFAULT_PROMPT,
    ) -> FrozenDiffusion:
        """Load the parts with ``from_pretrained(folder, subfolder=...)`` and encode ``prompt`` once.

        The text encoder and tokenizer are dropped after encoding the prompt: the condition is
        fixed, so keeping them would only cost memory.
        """
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        folder = check_diffusion_folder(folder)
        unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", torch_dtype=dtype)
        scheduler = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
        vae = None
        if (folder / "vae").is_dir():
            vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", torch_dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder")
        prompt_embeds = encode_prompt(text_encoder, tokenizer, prompt)
        for module in (unet, vae):
            if module is not None:
                module.requires_grad_(False).eval().to(device)
        return cls(unet, scheduler, vae, prompt_embeds.to(device=device, dtype=dtype), folder)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)

    @property
    def prompt_length(self) -> int:
        return int(self.prompt_embeds.shape[1])

    @property
    def num_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def pixel_size(self) -> int:
        """The image side the UNet's native resolution corresponds to."""
        size = int(self.unet.config.sample_size)
        if self.vae is None:
            return size * space_to_depth_factor(self.unet.config)
        return size * 2 ** (len(self.vae.config.block_out_channels) - 1)

    def latent_shape(self, crop_size: int) -> tuple[int, int, int]:
        """Shape of z0 (and of the noise) for square crops of ``crop_size`` pixels."""
        channels = int(self.unet.config.in_channels)
        if self.vae is None:
            side = int(self.unet.config.sample_size)
            return channels, side, side
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return channels, crop_size // factor, crop_size // factor

    @torch.no_grad()
    def latents(self, pixels01: torch.Tensor) -> torch.Tensor:
        """z0 of images in [0, 1]: VAE posterior mean x scaling factor, or pixels in [-1, 1]."""
        x = pixels01 * 2.0 - 1.0
        if self.vae is None:
            return pixel_latents(x, self.unet.config).to(self.unet.dtype)
        x = x.to(device=self.vae.device, dtype=self.vae.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._frozen_precision(self.vae):
            posterior = self.vae.encode(x).latent_dist
        return (posterior.mean * self.vae.config.scaling_factor).to(self.unet.dtype)

    def loss(
        self,
        z0: torch.Tensor,
        condition: torch.Tensor,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-draw diffusion loss and the predictions.

        ``z0`` [B, C, H, W]; ``condition`` [B, L, D]; ``timesteps`` [B, N] and ``noise``
        [B, N, C, H, W] hold N independent draws per image. All draws go through the UNet in one
        batch so each gets exactly the same weight (the mean), unlike the public code's 5:1.
        Returns (loss per image and draw [B, N], prediction [B, N, C, H, W]).
        """
        batch, draws = timesteps.shape
        shape = z0.shape[1:]
        # Noising and the target stay in fp32 (only the UNet runs in its own dtype).
        z = z0.float().unsqueeze(1).expand(-1, draws, *shape).reshape(batch * draws, *shape)
        eps = noise.reshape(batch * draws, *shape).to(device=z.device, dtype=torch.float32)
        t = timesteps.reshape(-1).to(z0.device)
        noisy = self.scheduler.add_noise(z, eps, t).to(self.unet.dtype)
        cond = condition.unsqueeze(1).expand(-1, draws, *condition.shape[1:])
        cond = cond.reshape(batch * draws, *condition.shape[1:]).to(self.unet.dtype)
        if self.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        with self._frozen_precision(self.unet):
            pred = self.unet(noisy, t, encoder_hidden_states=cond).sample
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            target = eps
        elif kind == "v_prediction":
            target = self.scheduler.get_velocity(z, eps, t)
        else:
            raise ValueError(f"unsupported prediction_type {kind!r}: use 'epsilon' or 'v_prediction'")
        per = F.mse_loss(pred.float(), target, reduction="none").flatten(1).mean(1)
        return per.view(batch, draws), pred.view(batch, draws, *shape)


def prompt_ids(text_encoder: torch.nn.Module, tokenizer: Any, texts: str | list[str]) -> torch.Tensor:
    """Token ids [N, L] of ``texts``, padded to the tokenizer's max length (SD style)."""
    length = int(tokenizer.model_max_length)
    if length > 4096:  # tokenizers without a declared limit report a huge sentinel
        length = int(text_encoder.config.max_position_embeddings)
    return tokenizer(
        texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    ).input_ids


@torch.no_grad()
def encode_prompt(text_encoder: torch.nn.Module, tokenizer: Any, prompt: str) -> torch.Tensor:
    """The text embedding [1, L, C] of ``prompt``, padded to the tokenizer's max length (SD style)."""
    ids = prompt_ids(text_encoder, tokenizer, prompt)
    text_encoder.eval()
    return text_encoder(ids).last_hidden_state
