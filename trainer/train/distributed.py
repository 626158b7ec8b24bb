"""One loop for one process and for ``torchrun`` DDP: the process group comes from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> DistInfo:
    """Join the process group ``torchrun`` describes (gloo on CPU, nccl on CUDA); no-op alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    return DistInfo(rank=rank, world=world, local_rank=local_rank)


def resolve_device(device: str, info: DistInfo) -> torch.device:
    """Under DDP each process takes the GPU of its local rank."""
    if device.startswith("cuda") and info.enabled and device == "cuda":
        return torch.device(f"cuda:{info.local_rank}")
    return torch.device(device)


def mean_across(value: float, info: DistInfo, device: torch.device) -> float:
    """Average a scalar over all processes (for logging; gradients are averaged by DDP)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world


def any_across(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process if it is true on any (a cancel seen by rank 0 stops all ranks)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
