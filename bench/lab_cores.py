"""How to spend a machine's cores on lab-sd pretraining, the lab build's costliest step (CPU).

Three ways to use ``--cores`` N on one forward and backward pass with weight gradients
(``bench/lab_sd.py``'s pretraining pass, at its shapes), in fresh spawned processes, in turns
(``--rounds``) so a busy neighbour slows all of them alike; best round kept, images per second:

* ``threads``: one process, N intra-op threads, the batch as the build runs it (``--threads N``);
* ``ddp``: N gloo DDP processes of one thread, the same global batch split between them (the
  same computation up to float rounding, so it would be a drop-in speed-up of one build);
* ``independent``: N unrelated one-thread processes, a full batch each (what N separate builds,
  or two stages with no data between them, get from the machine).

Whether N logical CPUs are N cores shows here: on SMT siblings nothing beats ``threads``; on
real cores ``independent`` does, and ``ddp`` only where a half batch still keeps a core busy.

  .venv/bin/python bench/lab_cores.py --steps 20 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
from typing import Any

import torch
import torch.multiprocessing as mp

MODES = ("threads", "ddp", "independent")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker(rank: int, mode: str, cores: int, args: dict[str, Any], port: int, results) -> None:
    """One spawned process: its own threads, process group and UNet; reports its step time."""
    import torch.distributed as dist
    from lab_sd import seconds_per_pass  # bench/ is on the path: the parent's, passed on by spawn

    from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig, new_unet

    torch.set_num_threads(cores if mode == "threads" else 1)
    batch = args["batch"] // cores if mode == "ddp" else args["batch"]
    config = DiffusionPretrainConfig(**args["layout"])
    unet: torch.nn.Module = new_unet(config, args["prompt"][1], seed=0).train()
    if mode == "ddp":
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=cores)
        unet = torch.nn.parallel.DistributedDataParallel(unet)
    try:
        seconds = seconds_per_pass(
            unet, batch, config.sample_size, tuple(args["prompt"]), args["steps"], weights=True
        )
        results.put((rank, seconds))
    finally:
        if mode == "ddp":
            dist.destroy_process_group()


def images_per_second(mode: str, cores: int, args: dict[str, Any]) -> float:
    """Throughput of one mode: spawn its processes, wait, read every process's step time."""
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = 1 if mode == "threads" else cores
    port = free_port()
    children = [
        context.Process(target=worker, args=(rank, mode, cores, args, port, results))
        for rank in range(processes)
    ]
    for child in children:
        child.start()
    seconds = {}
    while len(seconds) < len(children):
        try:
            rank, value = results.get(timeout=2)
            seconds[rank] = value
        except queue.Empty:
            # a process that died leaves its peers waiting in DDP's all-reduce: fail, do not hang
            dead = [c.exitcode for c in children if c.exitcode not in (None, 0)]
            if dead:
                for child in children:
                    child.terminate()
                raise RuntimeError(f"{mode} process exited with {dead[0]}") from None
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"{mode} process exited with {child.exitcode}")
    slowest = max(seconds.values())  # DDP steps in lockstep; independent ones end with the slowest
    images = args["batch"] * (cores if mode == "independent" else 1)
    return images / slowest


def main() -> None:
    import lab_sd  # the layouts and the pass being timed: bench/ is the script's own folder

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="the build's batch (global for ddp)")
    parser.add_argument("--layout", default="shipped", help="a layout of bench/lab_sd.py")
    args = parser.parse_args()
    if args.cores < 2 or args.batch % args.cores:
        parser.error("--cores must be at least 2 and divide --batch")

    if args.layout not in lab_sd.LAYOUTS:
        parser.error(f"unknown layout {args.layout!r}; choose from {sorted(lab_sd.LAYOUTS)}")
    shared = {
        "batch": args.batch,
        "steps": args.steps,
        "layout": lab_sd.LAYOUTS[args.layout],
        "prompt": lab_sd.prompt_shape(),
    }
    best = dict.fromkeys(MODES, 0.0)
    for round_ in range(1, args.rounds + 1):
        for mode in MODES:
            best[mode] = max(best[mode], images_per_second(mode, args.cores, shared))
            print(f"round {round_} {mode:12s} {best[mode]:8.1f} images/s")
    print(f"\n{'mode':12s} {'images/s':>9s} {'x threads':>9s}")
    for mode in MODES:
        print(f"{mode:12s} {best[mode]:9.1f} {best[mode] / best['threads']:9.2f}")
    print(
        json.dumps(
            {"cores": args.cores, "batch": args.batch, "layout": args.layout, "images_per_second": best}
        )
    )


if __name__ == "__main__":
    main()
