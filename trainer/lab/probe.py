"""Diagnostics that separate the three things diffusion feedback needs, per MMVP pattern.

* :func:`caption_sensitivity`: does the frozen diffusion model use the property? The share of
  images whose own statement gives a lower denoising loss than the pair's other statement (same
  noise, same timesteps); 50% means it ignores the property, near 100% that it renders it.
* :func:`text_separation`: can the CLIP's text tower tell the two statements apart at all?
* :func:`feedback_alignment`: does the feedback's first step point the right way? The share of
  images whose embedding the diffusion loss's gradient moves towards the image's own statement
  rather than the pair's other one: one gradient per image, a cheap first look at the ceiling.
* :func:`feedback_ceiling`: if the tower could move each image's embedding exactly as the
  diffusion loss asks, would MMVP rise? Each benchmark-style image's embedding is optimised
  directly (no tower), so this bounds what feedback can teach, apart from whether a tower learns it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.lab.diffusion_pretrain import to_pixels


def load_lab_sd(diffusion_dir: Path | str):
    """lab-sd's frozen parts for the probes: (unet, scheduler, tokenizer, text encoder, prompt states)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    from trainer.feedback.diffusion import DEFAULT_PROMPT, encode_prompt

    folder = str(diffusion_dir)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval().requires_grad_(False)
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer")
    text_encoder = CLIPTextModelWithProjection.from_pretrained(folder, subfolder="text_encoder").eval()
    prompt_states = encode_prompt(text_encoder, tokenizer, DEFAULT_PROMPT)
    return unet, scheduler, tokenizer, text_encoder, prompt_states


@torch.no_grad()
def caption_sensitivity(
    diffusion_dir: Path | str,
    *,
    pairs_per_pattern: int = 10,
    draws: int = 8,
    seed: int = 0,
    timesteps: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Per pattern: % of images whose true statement lowers the diffusion loss (50 = blind).

    ``timesteps`` [low, high) restricts the draws (default: the whole schedule), to see at which
    noise levels lab-sd reads each property (a recipe's ``timestep_range``).
    """
    from trainer.lab.diffusion_pretrain import caption_condition, tokenize
    from trainer.scenes import PATTERNS, draw_pair

    unet, scheduler, tokenizer, text_encoder, prompt_states = load_lab_sd(diffusion_dir)
    window = timesteps or (0, int(scheduler.config.num_train_timesteps))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    scores: dict[str, float] = {}
    for pattern in PATTERNS:
        wins = []
        for _ in range(pairs_per_pattern):
            pair = draw_pair(pattern, rng)
            pixels = _pair_pixels([pair])
            z0 = to_pixels(pixels, unet.config)  # [2, C, S, S]
            ids = tokenize(tokenizer, [f"a photo of {s}" for s in pair.statements])
            text = caption_condition(text_encoder, ids, prompt_states)  # [2, L, C]
            noise = torch.randn((draws, *z0.shape[1:]), generator=gen)
            t = torch.randint(*window, (draws,), generator=gen)
            for image in range(2):
                z = z0[image].expand(draws, -1, -1, -1)
                noisy = scheduler.add_noise(z, noise, t)
                losses = []
                for statement in range(2):
                    cond = text[statement].expand(draws, -1, -1)
                    pred = unet(noisy, t, encoder_hidden_states=cond).sample
                    losses.append(F.mse_loss(pred, noise))
                wins.append(float(losses[image] < losses[1 - image]))
        scores[pattern] = 100.0 * float(np.mean(wins))
    return scores


@torch.no_grad()
def text_separation(bundle, *, pairs_per_pattern: int = 20, seed: int = 0) -> dict[str, float]:
    """Per pattern: mean cosine similarity of the CLIP text embeddings of a pair's two statements.

    Near 1.0 the text tower cannot tell the statements apart, so no change to the vision tower
    alone can win that pattern's pairs (both statements would prefer the same image).
    """
    from trainer.scenes import PATTERNS, draw_pair

    rng = np.random.default_rng(seed)
    model = bundle.model.eval()
    out: dict[str, float] = {}
    for pattern in PATTERNS:
        statements = [
            s for _ in range(pairs_per_pattern) for s in draw_pair(pattern, rng, size=16).statements
        ]
        text = model.encode_text(bundle.tokenizer([f"a photo of {s}" for s in statements]), normalize=True)
        out[pattern] = float((text[0::2] * text[1::2]).sum(-1).mean())
    return out


def _pair_pixels(pairs) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for p in pairs for im in p.images])


@torch.no_grad()
def _pattern_pairs(bundle, unet_config, pattern: str, count: int, rng: np.random.Generator):
    """``count`` fresh pairs of ``pattern``, interleaved: the CLIP's image embeddings, its text
    embeddings of the statements (not normalised) and lab-sd's z0 of the images."""
    from trainer.lab.data import normalise
    from trainer.scenes import draw_pair

    pairs = [draw_pair(pattern, rng) for _ in range(count)]
    pixels = _pair_pixels(pairs)
    model = bundle.model.eval()
    start = model.encode_image(normalise(pixels, bundle.mean, bundle.std))
    text = model.encode_text(bundle.tokenizer([f"a photo of {s}" for p in pairs for s in p.statements]))
    return start, text, to_pixels(pixels, unet_config)


def _embedding_loss(unet, scheduler, prompt_states, z0, embeds, gen, bridge=None) -> torch.Tensor:
    """lab-sd's loss summed over images for one (t, noise) draw each, read at free embeddings.

    ``bridge`` (a fixed map, :func:`trainer.feedback.bridge.text_bridge`) carries the CLIP's
    embeddings to a lab-sd that reads captions through a text encoder of its own, as the
    post-training projector starts; None = lab-sd reads this CLIP's space directly.
    """
    from trainer.feedback.conditions import unit_scaled
    from trainer.lab.diffusion_pretrain import embedding_condition

    noise = torch.randn(z0.shape, generator=gen)
    t = torch.randint(scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
    if bridge is not None:
        embeds = bridge(unit_scaled(embeds))
    condition = embedding_condition(embeds, prompt_states)
    pred = unet(scheduler.add_noise(z0, noise, t), t, encoder_hidden_states=condition).sample
    return F.mse_loss(pred, noise, reduction="none").flatten(1).mean(1).sum()


def pair_accuracy(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> float:
    """MMVP-VLM pair accuracy (%) for interleaved pairs: both statements must pick their own image."""
    image = F.normalize(image_embeds, dim=-1).view(-1, 2, image_embeds.shape[-1])
    text = F.normalize(text_embeds, dim=-1).view(-1, 2, text_embeds.shape[-1])
    sims = text @ image.transpose(1, 2)  # [pairs, statement, image]
    correct = (sims[:, 0, 0] > sims[:, 0, 1]) & (sims[:, 1, 1] > sims[:, 1, 0])
    return 100.0 * float(correct.float().mean())


def feedback_ceiling(
    diffusion_dir: Path | str,
    bundle,
    *,
    pairs_per_pattern: int = 20,
    steps: int = 100,
    lr: float = 20.0,
    seed: int = 0,
    bridge: torch.nn.Module | None = None,
) -> dict[str, dict[str, float]]:
    """Per pattern: pair accuracy with the CLIP's own image embeddings ("before") and after
    ``steps`` of SGD on the embeddings themselves against lab-sd's loss ("after").

    The embeddings are free parameters read through lab-sd's own condition
    (:func:`~trainer.lab.diffusion_pretrain.embedding_condition`); the text embeddings stay fixed.
    """
    from trainer.scenes import PATTERNS

    unet, scheduler, _, _, prompt_states = load_lab_sd(diffusion_dir)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {}
    for pattern in PATTERNS:
        start, text, z0 = _pattern_pairs(bundle, unet.config, pattern, pairs_per_pattern, rng)
        embeds = start.clone().requires_grad_(True)
        optimiser = torch.optim.SGD([embeds], lr=lr, momentum=0.9)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            _embedding_loss(unet, scheduler, prompt_states, z0, embeds, gen, bridge).backward()
            optimiser.step()
        out[pattern] = {"before": pair_accuracy(start, text), "after": pair_accuracy(embeds.detach(), text)}
    return out


def feedback_alignment(
    diffusion_dir: Path | str,
    bundle,
    *,
    pairs_per_pattern: int = 20,
    draws: int = 8,
    seed: int = 0,
    bridge: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Per pattern: % of images for which the descent direction of lab-sd's loss at the CLIP's
    own image embedding (averaged over ``draws`` (t, noise) draws) has a positive projection on
    (own statement - other statement), the text embeddings unit length. 50% = no signal.

    The feedback ceiling's first step, without the 60 that follow: what post-training receives
    at the start, per image, before the tower has to generalise it.
    """
    from trainer.scenes import PATTERNS

    unet, scheduler, _, _, prompt_states = load_lab_sd(diffusion_dir)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for pattern in PATTERNS:
        start, text, z0 = _pattern_pairs(bundle, unet.config, pattern, pairs_per_pattern, rng)
        text = F.normalize(text, dim=-1)
        own_minus_other = text - text.view(-1, 2, text.shape[-1]).flip(1).reshape_as(text)
        embeds = start.clone().requires_grad_(True)
        for _ in range(draws):
            _embedding_loss(unet, scheduler, prompt_states, z0, embeds, gen, bridge).backward()
        descent = -embeds.grad
        out[pattern] = 100.0 * float(((descent * own_minus_other).sum(-1) > 0).float().mean())
    return out
