"""Cost of lab-sd UNet layouts, side by side, on the two paths the lab build runs them (CPU).

lab-sd's UNet is most of the build: pretraining runs it forward and backward with weight
gradients; post-training runs it frozen, backward only as far as the condition (nothing finer
than the first cross-attention level needs a gradient). Each layout is a
``DiffusionPretrainConfig`` override, built by the lab's own ``new_unet`` with random weights at
the lab's real shapes (batch 32 at the layout's side, or 2x2 blocks with ``space_to_depth``;
the condition is the lab CLIP's 36 tokens, 96 wide).
The layouts run in turns, ``--rounds`` times, so a busy neighbour slows all of them alike; the
best round of each is kept and the ratios to the shipped layout are printed, then one JSON line.

  .venv/bin/python bench/lab_sd.py --steps 4 --rounds 3
  .venv/bin/python bench/lab_sd.py --layouts shipped,32px-attention-8px-no-mid --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

LAYOUTS: dict[str, dict[str, Any]] = {
    "shipped": {},  # 24 px, cross-attention only at 6 px, no mid block (the defaults)
    # the earlier 32 px layouts (trainer/lab/configs/32px-fast.yaml and 32px.yaml)
    "32px-attention-8px-no-mid": {"sample_size": 32},
    "32px-attention-16-8px-mid": {"sample_size": 32, "attention_levels": None, "mid_block": True},
    # the 32 px UNet reading 64 px images as 2x2 blocks of 12 channels (space_to_depth)
    "32px-attention-8px-no-mid-s2d": {"sample_size": 32, "space_to_depth": 2},
}


def prompt_shape() -> tuple[int, int]:
    """(tokens, width) of lab-sd's condition: the lab CLIP's text context and joint width."""
    import open_clip

    from trainer.backbones.factory import list_architectures

    list_architectures()  # registers the project's configs with open_clip
    config = open_clip.get_model_config("lab-clip")
    return int(config["text_cfg"]["context_length"]), int(config["embed_dim"])


def seconds_per_pass(
    unet: torch.nn.Module, batch: int, size: int, prompt: tuple[int, int], steps: int, weights: bool
) -> float:
    """Mean seconds of a forward + backward; ``weights``: pretraining's gradients, else post-training's."""
    unet.requires_grad_(weights)
    gen = torch.Generator().manual_seed(0)
    channels = int(getattr(unet, "module", unet).config.in_channels)  # a DDP wrapper holds the UNet
    noisy = torch.randn(batch, channels, size, size, generator=gen)
    timesteps = torch.randint(1000, (batch,), generator=gen)
    condition = torch.randn(batch, *prompt, generator=gen).requires_grad_(not weights)
    unet(noisy, timesteps, encoder_hidden_states=condition).sample.square().mean().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        unet.zero_grad(set_to_none=True)
        unet(noisy, timesteps, encoder_hidden_states=condition).sample.square().mean().backward()
    return (time.perf_counter() - start) / steps


def main() -> None:
    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, new_unet

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated names of LAYOUTS")
    parser.add_argument("--steps", type=int, default=4, help="timed passes per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    names = [name for name in args.layouts.split(",") if name]
    unknown = sorted(set(names) - set(LAYOUTS))
    if unknown:
        parser.error(f"unknown layouts {unknown}; choose from {sorted(LAYOUTS)}")
    if "shipped" not in names:
        names.insert(0, "shipped")
    torch.set_num_threads(args.threads)

    prompt = prompt_shape()
    unets = {}
    for name in names:
        config = DiffusionPretrainConfig(**LAYOUTS[name])
        unets[name] = (new_unet(config, prompt[1], seed=0), config.sample_size)
    best: dict[str, dict[str, float]] = {
        name: {"pretrain": float("inf"), "post": float("inf")} for name in names
    }
    for round_ in range(1, args.rounds + 1):
        for name, (unet, size) in unets.items():
            for path, weights in (("pretrain", True), ("post", False)):
                seconds = seconds_per_pass(unet, args.batch, size, prompt, args.steps, weights)
                best[name][path] = min(best[name][path], seconds)
            pre, post = best[name]["pretrain"], best[name]["post"]
            print(f"round {round_} {name:22s} pretrain {pre:.3f} s  post {post:.3f} s")

    shipped = best["shipped"]
    print(f"\n{'layout':22s} {'params':>9s} {'pretrain s':>10s} {'x':>5s} {'post s':>7s} {'x':>5s}")
    for name, (unet, _) in unets.items():
        params = sum(p.numel() for p in unet.parameters())
        pre, post = best[name]["pretrain"], best[name]["post"]
        print(
            f"{name:22s} {params:9d} {pre:10.3f} {pre / shipped['pretrain']:5.2f} "
            f"{post:7.3f} {post / shipped['post']:5.2f}"
        )
    print(json.dumps({"batch": args.batch, "threads": args.threads, "seconds_per_pass": best}))


if __name__ == "__main__":
    main()
