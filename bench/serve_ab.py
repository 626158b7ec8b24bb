"""The project's server against itself under different settings, side by side in one run.

Each variant is a real ``uvicorn`` server of the same model (``bench/peers.py``'s registry folder
of ``--model``, with its ONNX export) started with its own ``DIVA_*`` environment; texts and images
at one concurrency, the variants in turns for ``--rounds`` rounds, so load from other processes
hits all alike. Prints items/s per round and the server's CPU time per item (from /proc).

  .venv/bin/python bench/serve_ab.py '{"torch": {"DIVA_RUNTIME": "torch"}, "onnx": {"DIVA_RUNTIME": "onnx"}}'
  .venv/bin/python bench/serve_ab.py '{"old": {"DIVA_GC_FREEZE": "0", "DIVA_OTEL": "1"}, "new": {}}' \\
      --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import peers  # type: ignore[import-not-found]

    from bench.serve import Server  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", help='JSON: {"name": {"DIVA_X": "value"}, ...}')
    parser.add_argument("--model", default="lab-clip-diva")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    variants: dict[str, dict[str, str]] = json.loads(args.variants)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="diva-ab-") as tmp:
        work = Path(tmp)
        _, _, model_id = peers.prepare_model(args.model, work / "home", work, hf=False)
        images = peers.jpegs(len(peers.TEXTS))
        servers = {}
        try:
            for name, extra in variants.items():
                env = {
                    **peers.thread_env(args.threads),
                    "DIVA_HOME": str(work / "home"),
                    "DIVA_DEFAULT_MODEL": model_id,
                    "DIVA_DEVICE": "cpu",
                    "DIVA_TORCH_THREADS": str(args.threads),
                    **extra,
                }
                servers[name] = Server(env, work / f"{name}.log").start()
            for server in servers.values():  # the variants load their models side by side
                server.wait_ready()
            for round_index in range(args.rounds):
                for workload in ("texts", "images"):
                    for name, server in servers.items():
                        raw = [
                            peers.request_bytes(server.port, "/v1/embeddings", body)
                            for body in peers.bodies("project", workload, model_id, images)
                        ]
                        if round_index == 0:  # warm-up
                            asyncio.run(peers.run_load(server.port, raw, args.concurrency, 1.0))
                        before = peers.process_cpu_s(server.process.pid)
                        run = asyncio.run(peers.run_load(server.port, raw, args.concurrency, args.seconds))
                        run["cpu_ms_per_item"] = (
                            1000
                            * (peers.process_cpu_s(server.process.pid) - before)
                            / max(1, run["requests"])
                        )
                        results.setdefault(workload, {}).setdefault(name, []).append(run)
        finally:
            for server in servers.values():
                server.__exit__()
    for workload, by_name in results.items():
        for name, runs in by_name.items():
            rates = " ".join(f"{r['items_per_s']:.0f}" for r in runs)
            cpu = " ".join(f"{r['cpu_ms_per_item']:.2f}" for r in runs)
            print(f"{workload:<7} {name:<12} items/s {rates:<20} server CPU ms/item {cpu}")
    return results


if __name__ == "__main__":
    main()
