"""The training loop: one plain function that reads top to bottom, for one process or DDP.

Per optimiser step: for each micro-batch, encode the crop with the frozen VAE (no grad), feed
the same crop (resized, normalised with the tower's statistics) to the tower, build the
condition, run all timestep draws through the frozen UNet in one batch, backpropagate the
epsilon MSE into tower + projector. Then clip, set the LR for this step, step the optimiser.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.backbones.factory import ClipBundle, save_open_clip
from trainer.feedback.diffusion import check_diffusion_folder
from trainer.feedback.losses import infonce_on_noise
from trainer.recipes.schema import LossConfig, TrainConfig, dump_train_config
from trainer.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from trainer.train.data import FeedbackDataset, collate, discover_images, positions, timestep_window
from trainer.train.distributed import (
    DistInfo,
    any_across,
    barrier,
    mean_across,
    resolve_device,
    setup_distributed,
)
from trainer.train.model import FeedbackSetup, build_setup, merge_lora
from trainer.train.schedule import lr_at


@dataclass(frozen=True)
class ProgressEvent:
    """One optimiser step done: what a progress bar or a job row shows."""

    step: int
    total: int
    loss: float
    images_per_s: float
    eta_s: float
    lr: float


@dataclass
class TrainResult:
    """``output_dir`` is the open_clip folder (written unless ``stopped``); ``run_dir`` its parent."""

    output_dir: Path
    run_dir: Path
    steps_done: int
    final_loss: float | None
    stopped: bool
    resumed_from_step: int | None
    skipped_images: int = 0
    bundle: ClipBundle | None = field(default=None, repr=False)  # the trained CLIP, in memory


def fingerprint(config: TrainConfig, world: int) -> dict[str, Any]:
    """Recipe fields that must match for a resume to be exact (the global batch, not the split)."""
    return {
        "model": config.model,
        "pretrained": config.pretrained,
        "force_image_size": config.force_image_size,
        "condition": config.condition.model_dump(),
        "projector": config.projector,
        "projector_init": config.projector_init,
        "projector_trainable": config.projector_trainable,
        "lora": config.lora.model_dump() if config.lora else None,
        "steps": config.steps,
        "global_batch": config.batch_size * world * config.grad_accum,
        "seed": config.seed,
        "crop_size": config.crop_size,
        "timestep_draws": config.timestep_draws,
        "timestep_range": list(config.timestep_range),
        # only when not the default, so runs checkpointed before this knob existed still resume
        **(
            {"timestep_sampling": config.timestep_sampling}
            if config.timestep_sampling != "independent"
            else {}
        ),
        "loss": config.loss.model_dump(),
    }


def param_groups(student: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters in two groups, the projector's at ``optim.projector_lr_scale``.

    Each group carries its ``lr_scale``; the loop sets ``lr`` = schedule x scale every step. At
    scale 1 it is one group, as before the knob, so older checkpoints' optimiser states still load.
    """
    trainable = [p for p in student.parameters() if p.requires_grad]
    if config.optim.projector_lr_scale == 1.0:
        return [{"params": trainable, "lr_scale": 1.0}]
    projector_ids = {id(p) for p in student.condition.projector.parameters()}
    groups = [
        {"params": [p for p in trainable if id(p) not in projector_ids], "lr_scale": 1.0},
        {
            "params": [p for p in trainable if id(p) in projector_ids],
            "lr_scale": config.optim.projector_lr_scale,
        },
    ]
    return [group for group in groups if group["params"]]


def make_optimizer(
    config: TrainConfig, params: list[torch.nn.Parameter] | list[dict[str, Any]], device: torch.device
):
    """SGD with momentum (DIVA) or AdamW; ``fused`` picks the fused kernels on CUDA, foreach elsewhere.

    ``params`` is a list of tensors or of :func:`param_groups`' groups.
    """
    opt = config.optim
    fast: dict[str, bool] = {}
    if opt.fused:
        fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if opt.name == "sgd":
        return torch.optim.SGD(
            params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay, **fast
        )
    return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, **fast)


def feedback_loss(
    setup: FeedbackSetup,
    student: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    *,
    train_tower: bool = True,
    latents: torch.Tensor | None = None,
    loss: LossConfig | None = None,
) -> torch.Tensor:
    """Loss of one micro-batch: epsilon MSE with all draws equally weighted (``latents`` if cached).

    With ``loss.kind == "infonce"`` (DCR) the batch also carries ``pixels_aug``, a second crop of
    each image, and every image is noised with the first image's timesteps and noise.
    ``loss.anchor_weight`` and ``loss.zeroshot_weight`` add the anchor terms
    (:mod:`trainer.train.anchor`).
    """
    timesteps = batch["timesteps"].to(device)
    noise = batch["noise"].to(device, non_blocking=True)
    patches = batch["patches"].to(device, non_blocking=True)
    if loss is not None and loss.kind == "infonce":
        # One (t, noise) per draw for the whole micro-batch: the negatives then differ from the
        # anchor only through their image and condition. With each image's own noise they are
        # orthogonal from the start and the loss is ~0 (0.0004 against an MSE of 0.025 in the lab).
        timesteps = timesteps[:1].expand_as(timesteps)
        noise = noise[:1].expand_as(noise)

    anchored = loss is not None and train_tower and loss.uses_base_anchor

    def predict(pixels: torch.Tensor, z0: torch.Tensor | None = None, *, with_anchor: bool = False):
        """(per-draw loss, prediction, anchor loss or 0) of one view."""
        z0 = z0 if z0 is not None else setup.feedback.latents(pixels)
        out = student(setup.tower_input(pixels), patches, train_tower=train_tower, with_anchor=with_anchor)
        condition, anchor = out if with_anchor else (out, 0.0)
        return (*setup.feedback.loss(z0, condition, timesteps, noise), anchor)

    pixels = batch["pixels"].to(device, non_blocking=True)
    per_draw, pred, anchor = predict(pixels, latents, with_anchor=anchored)
    if loss is None or loss.kind == "mse":
        return per_draw.mean() + anchor
    _, pred_aug, _ = predict(batch["pixels_aug"].to(device, non_blocking=True))
    contrastive = infonce_on_noise(pred, pred_aug, noise, loss.temperature)
    return contrastive + loss.mse_weight * per_draw.mean() + anchor


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(
    dataset: FeedbackDataset, config: TrainConfig, info: DistInfo, start_step: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches from ``start_step`` on, in the global position order (see data.py)."""

    def sampler() -> Iterator[list[int]]:
        for step in range(start_step, config.steps):
            for micro in range(config.grad_accum):
                yield positions(
                    step,
                    micro,
                    grad_accum=config.grad_accum,
                    world=info.world,
                    rank=info.rank,
                    batch=config.batch_size,
                )

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=list(sampler()),
        num_workers=config.data.num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
    yield from loader


def run_training(
    config: TrainConfig,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Post-train ``config.model``'s vision tower with feedback from ``config.diffusion``.

    Resumes from the newest checkpoint in ``<output_dir>/checkpoints/`` (exactly: same weights as
    an uninterrupted run). ``should_stop`` is polled before every step; when it returns True a
    checkpoint is written and the result has ``stopped=True`` (no model is saved).
    """
    device_name = config.resolved_device()
    info = setup_distributed(device_name)
    device = resolve_device(device_name, info)
    precision = config.resolved_precision()
    frozen_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    run_dir = Path(config.output_dir)
    output_dir = run_dir / "open_clip"
    torch.manual_seed(config.seed + info.rank)

    check_diffusion_folder(config.diffusion)
    refs = discover_images(config.data.path, config.data.kind)
    setup = build_setup(config, device, frozen_dtype)
    if device.type == "cuda":  # DIVA: bf16 autocast + tf32 for what stays in fp32
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if config.channels_last:
        setup.feedback.set_channels_last()
    if config.fuse_qkv:
        setup.feedback.fuse_projections()
    if config.compile:
        setup.feedback.compile()
    student: torch.nn.Module = setup.student
    groups = param_groups(setup.student, config)
    params = [p for group in groups for p in group["params"]]  # every trainable one, for clipping
    optimizer = make_optimizer(config, groups, device)
    stamp = fingerprint(config, info.world)

    start_step, resumed_from, loss_value = 0, None, None
    skipped: set[int] = set()
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        payload = load_checkpoint(ckpt, model=setup.student, optimizer=optimizer, fingerprint=stamp)
        start_step = resumed_from = int(payload["step"])
        skipped = set(payload["extra"].get("skipped", []))
        loss_value = payload["extra"].get("loss")

    if info.enabled:
        student = torch.nn.parallel.DistributedDataParallel(
            setup.student,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.projector_warmup_steps > 0,
        )
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.yaml").write_text(dump_train_config(config))

    dataset = FeedbackDataset(
        refs,
        seed=config.seed,
        crop_size=config.crop_size,
        crop_scale=config.crop_scale,
        latent_shape=setup.latent_shape,
        timesteps=timestep_window(config.timestep_range, setup.feedback.num_timesteps),
        draws=config.timestep_draws,
        random_patches=setup.random_patches,
        num_patches=setup.num_patches,
        second_view=config.loss.kind == "infonce",
        stratify_group=config.batch_size * info.world if config.timestep_sampling == "stratified" else 0,
    )
    batches = _batches(dataset, config, info, start_step)
    global_batch = config.batch_size * config.grad_accum * info.world
    student.train()
    step, stopped = start_step, False
    started = time.perf_counter()

    def checkpoint(at: int) -> None:
        if info.is_main:
            save_checkpoint(
                run_dir,
                step=at,
                model=setup.student,
                optimizer=optimizer,
                fingerprint=stamp,
                extra={
                    "skipped": sorted(skipped),
                    "loss": loss_value,
                    "data_position": at * global_batch,  # next sample position (see data.py)
                    "config": config.model_dump(mode="json"),
                },
                keep=config.keep_checkpoints,
            )
        barrier(info)

    metrics = (run_dir / "metrics.jsonl").open("a") if info.is_main else None
    try:
        while step < config.steps:
            if any_across(bool(should_stop and should_stop()), info, device):
                checkpoint(step)
                stopped = True
                break
            lr = lr_at(
                step,
                total_steps=config.steps,
                base_lr=config.optim.lr,
                warmup_fraction=config.optim.warmup_fraction,
                min_lr=config.optim.min_lr,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            train_tower = step >= config.projector_warmup_steps
            tick = time.perf_counter()
            total = torch.zeros((), device=device)
            for micro in range(config.grad_accum):
                batch = next(batches)
                skipped.update(int(i) for i in batch["bad"])
                # DDP all-reduces gradients only on the last micro-step of the step.
                sync = micro == config.grad_accum - 1 or not info.enabled
                with contextlib.nullcontext() if sync else student.no_sync():
                    with _autocast(device, precision):
                        loss = feedback_loss(
                            setup, student, batch, device, train_tower=train_tower, loss=config.loss
                        )
                    (loss / config.grad_accum).backward()
                total += loss.detach().float()
            if config.optim.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = mean_across(float(total) / config.grad_accum, info, device)
            elapsed = time.perf_counter() - tick
            rate = global_batch / elapsed if elapsed > 0 else 0.0
            remaining = (time.perf_counter() - started) / (step - start_step) * (config.steps - step)
            event = ProgressEvent(step, config.steps, loss_value, rate, remaining, lr)
            if info.is_main:
                if progress is not None:
                    progress(event)
                if metrics is not None and (step % config.log_every == 0 or step == config.steps):
                    metrics.write(json.dumps(event.__dict__) + "\n")
                    metrics.flush()
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint(step)
    finally:
        if metrics is not None:
            metrics.close()

    if not stopped:
        merge_lora(setup.student)
        if info.is_main:
            save_open_clip(setup.bundle, output_dir)
        barrier(info)
    return TrainResult(
        output_dir=output_dir,
        run_dir=run_dir,
        steps_done=step,
        final_loss=loss_value,
        stopped=stopped,
        resumed_from_step=resumed_from,
        skipped_images=len(skipped),
        bundle=None if stopped else setup.bundle,
    )
