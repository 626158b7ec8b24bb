"""Self-describing checkpoints under ``<output_dir>/checkpoints/`` and exact resume.

A checkpoint holds the trainable weights (tower + projector, or LoRA + base), the optimiser
state, the step (which also fixes the LR and the data position), the RNG states and the recipe
fingerprint. Writes are atomic (temporary file then rename), so a killed run never leaves a
half-written checkpoint that the next run would pick up.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_PATTERN = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_dir(output_dir: Path | str) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: Path | str) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: Path | str) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def rng_states() -> dict[str, Any]:
    """Global RNG states in plain types and tensors, so ``torch.load(weights_only=True)`` reads them."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    output_dir: Path | str,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``step-XXXXXXXX.pt`` atomically and keep only the newest ``keep`` checkpoints."""
    folder = checkpoint_dir(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    payload = {
        "step": step,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "fingerprint": fingerprint,
        "extra": extra or {},
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    for _, old in list_checkpoints(output_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


class CheckpointMismatchError(ValueError):
    """The checkpoint was written by a run with a different recipe; resuming would not be exact."""


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    fingerprint: dict[str, Any],
) -> dict[str, Any]:
    """Restore weights, optimiser and RNG states; return the payload (step, extra)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    differ = sorted(
        key
        for key in set(fingerprint) | set(payload["fingerprint"])
        if fingerprint.get(key) != payload["fingerprint"].get(key)
    )
    if differ:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written with a different {', '.join(differ)}; use another output_dir "
            "or delete its checkpoints/ to start over"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    restore_rng_states(payload["rng"])
    return payload
