"""One DIVA training step: the public recipe's replica vs this project's optimised path.

Prints images/s and peak GPU memory of each variant, side by side, with the ratio, in one run,
then one JSON line. Same loss math everywhere: epsilon MSE, ``--draws`` equal-weight timestep
draws, VAE posterior mean x 0.18215, CLS + 76 random patch tokens added token-wise to a 77-token
prompt embedding, SGD momentum 0.9, grad clip 1.0.

Variants
  replica        fp32 frozen weights under bf16 autocast + tf32, VAE encode inside the step, one UNet
                 call per draw, eager, SGD (torch default kernels)         (METHOD.md section 6, row 1)
  project        the trainer's own step (trainer.train.loop.feedback_loss): frozen UNet/VAE weights in
                 bf16 and run in pure bf16 outside autocast (the tower keeps fp32 weights under bf16
                 autocast), all draws in one UNet call, fused q/k/v projections, channels_last,
                 torch.compile(UNet, VAE encoder), fused SGD; VAE encode still inside the step
  project+cache  the same, with the latents encoded once outside the step (cached latents)

Shapes
  --tiny (default without CUDA): diva-tiny-vit + a tiny diffusers model, crop 16, batch 4
  --real: ViT-L-14 @224 (random weights) + SD-2.1-base UNet and VAE from their configs (random
          weights), crop 512 -> latents 4x64x64, prompt embedding 77 x 1024, batch 16

Example (the lead's H200 run, about 3 minutes):
  .venv/bin/python bench/train_step.py --real --warmup 3 --steps 10
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Measure:
    name: str
    images_per_s: float
    peak_gib: float | None
    loss: float
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def _reset(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def build(args, device: torch.device, frozen_dtype: torch.dtype):
    """A FeedbackSetup built from architecture configs (random weights)."""
    from trainer.backbones import create_clip
    from trainer.backbones.tokens import TokenTower
    from trainer.feedback.conditions import ClsPlusRandom, ConditionBuilder, build_projector, random_count
    from trainer.feedback.diffusion import FrozenDiffusion
    from trainer.train.model import FeedbackSetup, Student, TowerInput

    torch.manual_seed(0)  # every variant starts from the same random weights (same loss)
    if args.real:
        from trainer.feedback.reference import build_sd21_base

        unet, vae, scheduler = build_sd21_base(str(device), frozen_dtype)
        torch.manual_seed(0)
        prompt = torch.randn(1, 77, 1024, device=device, dtype=frozen_dtype)
        feedback = FrozenDiffusion(unet, scheduler, vae, prompt, Path("sd21-base-config"))
        with torch.device(device):  # initialise the 428M CLIP on the GPU, not on the host
            bundle = create_clip("ViT-L-14", device=str(device))
    else:
        from trainer.feedback.tiny import build_tiny_diffusion

        with tempfile.TemporaryDirectory() as tmp:
            folder = build_tiny_diffusion(Path(tmp) / "sd")
            feedback = FrozenDiffusion.load(folder, device=device, dtype=frozen_dtype)
        bundle = create_clip("diva-tiny-vit", device=str(device))
    torch.manual_seed(0)
    bundle.model.requires_grad_(False)
    visual = bundle.model.visual.requires_grad_(True)
    tower = TokenTower(visual)
    num_patches = tower.num_patches(bundle.image_size)
    condition = ClsPlusRandom(n=feedback.prompt_length - 1)
    projector = build_projector("linear", tower.embed_dim, feedback.cross_attention_dim)
    builder = ConditionBuilder(condition, projector, feedback.prompt_embeds.float())
    student = Student(tower, builder).to(device).train()
    return FeedbackSetup(
        bundle=bundle,
        student=student,
        feedback=feedback,
        tower_input=TowerInput(bundle.image_size, bundle.mean, bundle.std).to(device),
        num_patches=num_patches,
        random_patches=random_count(condition, num_patches),
        condition_length=builder.check_shapes(num_patches),
        latent_shape=feedback.latent_shape(args.crop),
    )


def make_batch(setup, args, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    batch = {
        "pixels": torch.rand(args.batch, 3, args.crop, args.crop, generator=generator),
        "patches": torch.randint(
            0, setup.num_patches, (args.batch, setup.random_patches), generator=generator
        ),
        "timesteps": torch.randint(0, 1000, (args.batch, args.draws), generator=generator),
        "noise": torch.randn(args.batch, args.draws, *setup.latent_shape, generator=generator),
    }
    return {k: v.to(device) for k, v in batch.items()}


def replica_loss(setup, batch, device) -> torch.Tensor:
    """The public code's step shape: VAE in the step, one UNet call (and graph) per draw."""
    feedback = setup.feedback
    pixels = batch["pixels"]
    with torch.no_grad():
        latent = feedback.vae.encode(pixels * 2 - 1).latent_dist.mean * feedback.vae.config.scaling_factor
    condition = setup.student(setup.tower_input(pixels), batch["patches"])
    total = 0.0
    draws = batch["timesteps"].shape[1]
    for d in range(draws):
        t = batch["timesteps"][:, d]
        noise = batch["noise"][:, d]
        noisy = feedback.scheduler.add_noise(latent, noise, t)
        pred = feedback.unet(noisy, t, encoder_hidden_states=condition).sample
        total = total + F.mse_loss(pred.float(), noise.float())
    return total / draws


def time_variant(name, setup, batch, device, args, *, loss_fn, optimizer, autocast: bool) -> Measure:
    params = [p for p in setup.student.parameters() if p.requires_grad]
    amp = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if autocast and device.type == "cuda"
        else contextlib.nullcontext()
    )

    def step() -> float:
        with amp:
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    print(f"[{name}] warm-up ({args.warmup} steps) ...", file=sys.stderr, flush=True)
    for _ in range(args.warmup):
        loss = step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    _sync(device)
    elapsed = time.perf_counter() - start
    rate = args.batch * args.steps / elapsed
    print(f"[{name}] {rate:.1f} images/s", file=sys.stderr, flush=True)
    return Measure(name, rate, _peak(device), loss)


def step_flops(setup, args) -> dict[str, float]:
    """FLOPs per image of each part of the step, counted on the meta device (no memory, no time).

    UNet: forward + backward to the condition, per draw; tower: forward + backward (weights and
    input); VAE: encoder forward. Turns images/s into achieved TFLOP/s, i.e. how close to the
    card's peak a variant runs.
    """
    import open_clip
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return float(counter.get_total_flops())

    unet_cfg = dict(setup.feedback.unet.config)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_cfg).requires_grad_(False)
        latent = torch.empty(1, *setup.latent_shape)
        cond = torch.empty(1, setup.condition_length, setup.feedback.cross_attention_dim, requires_grad=True)
        out = {}
        pred = None

        def unet_forward() -> None:
            nonlocal pred
            pred = unet(latent, torch.tensor([500]), encoder_hidden_states=cond).sample

        out["unet_fwd"] = count(unet_forward)
        out["unet_bwd"] = count(lambda: pred.sum().backward())
        vae_cfg = setup.feedback.vae.config if setup.feedback.vae is not None else None
        if vae_cfg is not None:
            vae = AutoencoderKL.from_config(dict(vae_cfg)).requires_grad_(False)
            out["vae_encode"] = count(lambda: vae.encode(torch.empty(1, 3, args.crop, args.crop)))
        else:
            out["vae_encode"] = 0.0
        model = open_clip.create_model("ViT-L-14" if args.real else "diva-tiny-vit", device="meta")
        size = setup.bundle.image_size
        tokens = None

        def tower_forward() -> None:
            nonlocal tokens
            tokens = model.visual(torch.empty(1, 3, size, size))

        out["tower_fwd"] = count(tower_forward)
        out["tower_bwd"] = count(lambda: tokens.sum().backward())
    draws = args.draws
    out["per_image_cached"] = (
        draws * (out["unet_fwd"] + out["unet_bwd"]) + out["tower_fwd"] + out["tower_bwd"]
    )
    out["per_image"] = out["per_image_cached"] + out["vae_encode"]
    return out


def run(args) -> dict:
    from trainer.train.loop import feedback_loss

    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results: list[Measure] = []

    # --- replica: fp32 frozen weights, autocast, VAE in the step, a UNet call per draw, eager.
    _reset(device)
    setup = build(args, device, torch.float32)
    batch = make_batch(setup, args, device)
    params = [p for p in setup.student.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    results.append(
        time_variant(
            "replica",
            setup,
            batch,
            device,
            args,
            loss_fn=lambda: replica_loss(setup, batch, device),
            optimizer=optimizer,
            autocast=True,
        )
    )
    del setup, optimizer, params
    _reset(device)

    # --- project: the trainer's step with its GPU options.
    frozen_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    setup = build(args, device, frozen_dtype)
    batch = make_batch(setup, args, device)
    if args.channels_last:
        setup.feedback.set_channels_last()
    note = ""
    if args.fuse_qkv:
        setup.feedback.fuse_projections()
        note = "fused qkv"
    if args.compile:
        setup.feedback.compile(args.compile_mode)
        note += f", compiled UNet + VAE encoder ({args.compile_mode})"
    if args.compile_tower:
        setup.student.tower = torch.compile(setup.student.tower)
        note += " + tower"
    params = [p for p in setup.student.parameters() if p.requires_grad]
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, **fused)
    results.append(
        time_variant(
            "project",
            setup,
            batch,
            device,
            args,
            loss_fn=lambda: feedback_loss(setup, setup.student, batch, device),
            optimizer=optimizer,
            autocast=True,
        )
    )
    results[-1].note = note.strip(", ")
    _reset(device)
    with torch.no_grad():
        cached = setup.feedback.latents(batch["pixels"])
    results.append(
        time_variant(
            "project+cache",
            setup,
            batch,
            device,
            args,
            loss_fn=lambda: feedback_loss(setup, setup.student, batch, device, latents=cached),
            optimizer=optimizer,
            autocast=True,
        )
    )
    results[-1].note = (note + ", latents cached").strip(", ")
    flops = step_flops(setup, args)
    return report(results, args, device, flops)


def report(results: list[Measure], args, device: torch.device, flops: dict[str, float]) -> dict:
    base = results[0].images_per_s
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    shape = f"real (ViT-L-14 @224 + SD-2.1-base, crop {args.crop})" if args.real else "tiny"

    def work(m: Measure) -> float:  # FLOPs per image this variant does inside the step
        return flops["per_image_cached"] if m.name.endswith("+cache") else flops["per_image"]

    print(f"\nDIVA training step, {shape}, batch {args.batch}, {args.draws} draws, {card}")
    g = {key: value / 1e9 for key, value in flops.items()}
    print(
        f"work per image: {g['per_image']:.1f} GFLOP with the VAE encode, {g['per_image_cached']:.1f} "
        f"without (per draw UNet fwd {g['unet_fwd']:.1f} + bwd {g['unet_bwd']:.1f}; "
        f"VAE encode {g['vae_encode']:.1f}; tower fwd+bwd {g['tower_fwd'] + g['tower_bwd']:.1f})"
    )
    print(f"{'variant':<15} {'images/s':>10} {'peak GiB':>9} {'x replica':>10} {'TFLOP/s':>9}  note")
    for m in results:
        peak = f"{m.peak_gib:.1f}" if m.peak_gib is not None else "-"
        achieved = m.images_per_s * work(m) / 1e12
        print(
            f"{m.name:<15} {m.images_per_s:>10.1f} {peak:>9} {m.images_per_s / base:>10.2f} "
            f"{achieved:>9.2f}  {m.note}"
        )
    payload = {
        "bench": "train_step",
        "card": card,
        "shape": "real" if args.real else "tiny",
        "batch": args.batch,
        "draws": args.draws,
        "tflop_per_image": round(flops["per_image"] / 1e12, 4),
        "tflop_per_image_cached": round(flops["per_image_cached"] / 1e12, 4),
        "results": {
            m.name: {
                "images_per_s": round(m.images_per_s, 3),
                "peak_gib": None if m.peak_gib is None else round(m.peak_gib, 2),
                "ratio": round(m.images_per_s / base, 3),
                "tflops_per_s": round(m.images_per_s * work(m) / 1e12, 3),
                "loss": m.loss,
                "note": m.note,
            }
            for m in results
        },
    }
    print(json.dumps(payload))
    return payload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--tiny", action="store_true", help="tiny shapes (default without CUDA)")
    shape.add_argument("--real", action="store_true", help="ViT-L-14 + SD-2.1-base shapes, random weights")
    parser.add_argument("--batch", type=int, default=None, help="images per step (16 real, 4 tiny)")
    parser.add_argument("--draws", type=int, default=2, help="timestep draws per image")
    parser.add_argument("--crop", type=int, default=None, help="crop side fed to the VAE (512 real, 16 tiny)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager UNet in 'project'")
    parser.add_argument("--compile-tower", action="store_true", help="also torch.compile the vision tower")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode for the UNet")
    parser.add_argument("--no-fuse-qkv", dest="fuse_qkv", action="store_false", help="unfused attention")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    args = parser.parse_args(argv)
    if not args.real and not args.tiny:
        args.real = torch.cuda.is_available()
        args.tiny = not args.real
    if args.batch is None:
        args.batch = 16 if args.real else 4
    if args.crop is None:
        args.crop = 512 if args.real else 16
    if args.device == "cpu":
        args.compile = args.compile and False  # inductor on a shared CPU costs minutes for nothing
    return args


if __name__ == "__main__":
    run(parse_args())
