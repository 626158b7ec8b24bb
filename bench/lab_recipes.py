"""Post-training step cost of lab recipe variants, side by side, on the built-in lab models (CPU).

Each variant runs the project's own trainer (``trainer.train.run_training``) on the built-in
``lab-clip-base`` and ``lab-sd`` for ``--steps`` steps; the time per step is measured from the
progress events after ``--warmup`` steps (model loading and the first steps are left out). The
variants run in turns, ``--rounds`` times, so a busy neighbour slows all of them alike; the
ratios to the shipped recipe are printed, then one JSON line.

``--variants`` picks among the recipe variants and the speed flags: the recipe's own switches
that change kernels, not the maths (channels_last, fused q/k/v projections, ``torch.compile`` of
the UNet; made for the GPU, measured here on the CPU). The compile variant's first round includes
its compilation.

  .venv/bin/python bench/lab_recipes.py --steps 40 --rounds 2
  .venv/bin/python bench/lab_recipes.py --variants shipped,channels-last,fuse-qkv,compile
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    "one-draw": {"timestep_draws": 1},
    "infonce": {"loss.kind": "infonce", "loss.mse_weight": 1000.0, "loss.zeroshot_weight": 30.0},
    "no-distillation": {"loss.zeroshot_weight": 0.0, "loss.zeroshot_level_weight": 0.0},
}
SPEED_FLAGS: dict[str, dict[str, Any]] = {
    "channels-last": {"channels_last": True},
    "fuse-qkv": {"fuse_qkv": True},
    "compile": {"compile": True},
}


def seconds_per_step(overrides: dict[str, Any], images: Path, out: Path, steps: int, warmup: int) -> float:
    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.recipes.schema import load_train_config
    from trainer.train import run_training

    config = load_train_config(
        "lab-diva",
        {
            "model": str(BUILTIN_MODELS_DIR / "lab-clip-base"),
            "diffusion": str(BUILTIN_MODELS_DIR / "lab-sd"),
            "data.path": str(images),
            "output_dir": str(out),
            "device": "cpu",
            "steps": steps,
            "checkpoint_every": steps,
            "log_every": 1,
            **overrides,
        },
    )
    stamps: dict[int, float] = {}
    run_training(config, progress=lambda event: stamps.setdefault(event.step, time.perf_counter()))
    return (stamps[steps] - stamps[warmup]) / (steps - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"Comma-separated, from {', '.join([*VARIANTS, *SPEED_FLAGS])} (shipped is always run).",
    )
    args = parser.parse_args()
    if not 0 < args.warmup < args.steps:
        parser.error("need 0 < --warmup < --steps")
    known = {**VARIANTS, **SPEED_FLAGS}
    names = ["shipped", *(n for n in args.variants.split(",") if n and n != "shipped")]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(known)}")
    chosen = {name: known[name] for name in dict.fromkeys(names)}
    torch.set_num_threads(args.threads)
    from trainer.lab.pipeline import write_feedback_images

    with tempfile.TemporaryDirectory() as tmp:
        images = write_feedback_images(Path(tmp) / "images", 64, seed=0, size=64)
        timings: dict[str, list[float]] = {name: [] for name in chosen}
        for round_index in range(args.rounds):
            for name, overrides in chosen.items():
                out = Path(tmp) / f"{name}-{round_index}"
                timings[name].append(seconds_per_step(overrides, images, out, args.steps, args.warmup))
                print(f"round {round_index + 1} {name:16s} {timings[name][-1]:.3f} s/step", flush=True)
    median = {name: statistics.median(values) for name, values in timings.items()}
    print(f"\n{'variant':16s} {'s/step':>8s} {'x shipped':>10s}")
    for name, value in median.items():
        print(f"{name:16s} {value:8.3f} {value / median['shipped']:10.2f}")
    print(json.dumps({"steps": args.steps, "rounds": args.rounds, "seconds_per_step": median}))


if __name__ == "__main__":
    main()
