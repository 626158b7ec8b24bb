"""Does the diffusion model know a property? Caption sensitivity per MMVP pattern.

Diffusion feedback can only teach the CLIP what the frozen diffusion model itself uses. For each
pair of a pattern, this measures the denoising loss of an image under its own statement and under
the pair's other statement (same noise, same timesteps): the share of images whose own statement
gives the lower loss. 50% means the model ignores that property; near 100% means it renders it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.lab.diffusion_pretrain import to_pixels


@torch.no_grad()
def caption_sensitivity(
    diffusion_dir: Path | str, *, pairs_per_pattern: int = 10, draws: int = 8, seed: int = 0
) -> dict[str, float]:
    """Per pattern: % of images whose true statement lowers the diffusion loss (50 = blind)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    from trainer.scenes import PATTERNS, draw_pair

    folder = str(diffusion_dir)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval()
    size = int(unet.config.sample_size)
    length = int(tokenizer.model_max_length)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    scores: dict[str, float] = {}
    for pattern in PATTERNS:
        wins = []
        for _ in range(pairs_per_pattern):
            pair = draw_pair(pattern, rng)
            pixels = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in pair.images])
            z0 = to_pixels(pixels, size)  # [2, 3, S, S]
            ids = tokenizer(
                [f"a photo of {s}" for s in pair.statements],
                padding="max_length",
                max_length=length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            text = text_encoder(ids)[0]  # [2, L, C]
            noise = torch.randn((draws, *z0.shape[1:]), generator=gen)
            t = torch.randint(scheduler.config.num_train_timesteps, (draws,), generator=gen)
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
