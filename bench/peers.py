"""The project's server against infinity (``infinity-emb``), side by side in one run.

One built-in model (``lab-clip-diva`` by default), served twice over real HTTP on this machine:

* the project: ``uvicorn service.main:create_app`` on the model's registry folder (the open_clip
  weights the export was made from, plus an ONNX export), as ``diva serve`` runs it, with its
  default runtime (``auto``: ONNX Runtime on CPU for a model with an export);
* infinity: ``infinity_emb v2`` on the Hugging Face ``CLIPModel`` folder that the project's own
  ``diva export MODEL --format hf`` writes, unchanged, from its own venv (``make peers-venv``),
  torch engine.

Both get the same threads (``--threads`` for PyTorch, ONNX Runtime and OpenMP), the same largest
batch (32) and the same client: a minimal keep-alive HTTP/1.1 loop (:mod:`asyncio` streams, one
connection per in-flight request) that sends pre-encoded bodies, one item per request, so the
client spends as little of the shared cores as it can. Workloads: texts and 96 px JPEGs (base64 in
OpenAI-shaped JSON) at each concurrency; every (workload, concurrency) cell runs on both servers
in turns, ``--rounds`` times, the order flipping each round, so load from other processes hits
both alike. Each cell also reports the server process's CPU time per item (from ``/proc``), which
moves less with the machine's load than items/s. The bare towers (PyTorch and ONNX Runtime, in
this process, batch 16) are measured in the same rounds; each server is reported as a fraction of
its own runtime's tower.

Embeddings of the same inputs are compared between the servers (max abs difference of the unit
vectors). The last line printed is ``peer ratio images X.XX texts Y.YY``: project over infinity,
items/s at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS_VENV = ROOT / "var" / "peers-venv"
TEXTS = [
    f"{count} {color} {shape}{'s' if count != 'one' else ''}"
    for count in ("one", "two", "three")
    for color in ("red", "green", "blue", "yellow")
    for shape in ("circle", "square", "triangle")
]


def infinity_python(venv: Path = PEERS_VENV) -> Path | None:
    """The peers venv's interpreter when infinity imports there, else None (tests skip on it)."""
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    probe = subprocess.run([str(python), "-c", "import infinity_emb"], capture_output=True, timeout=120)
    return python if probe.returncode == 0 else None


# --- the client -------------------------------------------------------------------------------
def request_bytes(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> bytes:
    """One request on a kept-alive connection; the body of a 200, else raises."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    return body


async def run_load(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` connections, each sending the next pre-encoded request as soon as the last
    answered, for ``seconds``; items/s (one item per request) and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    await exchange(reader, writer, requests[i % len(requests)])
                except (RuntimeError, asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - started)
                i += concurrency
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    lat = np.asarray(latencies or [float("nan")]) * 1000
    return {
        "items_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "requests": len(latencies),
        "errors": errors,
    }


async def fetch_vectors(port: int, requests: list[bytes]) -> np.ndarray:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        rows = [json.loads(await exchange(reader, writer, raw))["data"][0]["embedding"] for raw in requests]
    finally:
        writer.close()
    return np.asarray(rows, dtype=np.float32)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the servers ------------------------------------------------------------------------------
class Process:
    """A server in a child process, ready when ``probe`` answers 200; killed on exit."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.command, self.env, self.port, self.log_path = name, command, env, port, log

    def start(self, probe: str, timeout_s: float = 300) -> Process:
        import httpx

        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command, env={**os.environ, **self.env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{probe}", timeout=30).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        from bench.serve import stop_child  # type: ignore[import-not-found]

        stop_child(self.process, self.log)


def thread_env(threads: int) -> dict[str, str]:
    count = str(threads)
    return {"OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count, "TOKENIZERS_PARALLELISM": "false"}


def project_server(home: Path, model_id: str, args: argparse.Namespace, work: Path) -> Any:
    """``bench/serve.py``'s uvicorn child (ready when its model is), as ``diva serve`` runs it."""
    from bench.serve import Server  # type: ignore[import-not-found]

    env = {
        **thread_env(args.threads),
        "DIVA_HOME": str(home),
        "DIVA_DEFAULT_MODEL": model_id,
        "DIVA_DEVICE": args.device,
        "DIVA_RUNTIME": args.project_runtime,
        "DIVA_TORCH_THREADS": str(args.threads),
        "DIVA_BATCH_MAX_SIZE": "32",
    }
    return Server(env, work / "project.log")


def infinity_server(
    python: Path, hf_dir: Path, model_id: str, args: argparse.Namespace, work: Path
) -> Process:
    from bench.serve import free_port  # type: ignore[import-not-found]

    port = free_port()
    env = {
        **thread_env(args.threads),
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
    }
    command = [str(python.parent / "infinity_emb"), "v2", "--model-id", str(hf_dir)]
    command += ["--served-model-name", model_id, "--port", str(port), "--host", "127.0.0.1"]
    command += ["--device", args.device.split(":")[0], "--engine", "torch", "--batch-size", "32"]
    command += ["--log-level", "warning"]
    return Process("infinity", command, env, port, work / "infinity.log")


# --- the model --------------------------------------------------------------------------------
def prepare_model(model: str, home: Path, work: Path, *, hf: bool = True) -> tuple[Any, Path | None, str]:
    """The project's registry folder of ``model`` (open_clip + ONNX export) under ``home``, and the
    Hugging Face folder written by ``diva export --format hf`` (what infinity serves; ``hf=False``
    skips that export, a CLI run of its own, for runs that serve only the project)."""
    from trainer.artifacts import BUILTIN_MODELS_DIR
    from trainer.backbones.factory import create_clip, write_model_folder
    from trainer.export.onnx import export_onnx

    hf_dir = work / "hf" if hf else None
    if hf_dir is not None:
        diva = Path(sys.executable).parent / "diva"
        command = [str(diva)] if diva.is_file() else [sys.executable, "-m", "cli.main"]
        export = [*command, "export", model, "--format", "hf", "--out", str(hf_dir)]
        subprocess.run(export, check=True, cwd=ROOT)
    source = BUILTIN_MODELS_DIR / model / "open_clip"
    bundle = create_clip(str(source if source.is_dir() else model))
    model_id = f"peer-{model}"
    artifact = write_model_folder(bundle, home / "models", model_id, checksum=False, description="bench")
    export_onnx(bundle, artifact.onnx_dir)
    return bundle, hf_dir, model_id


def jpegs(count: int, size: int = 96) -> list[bytes]:
    from bench.serve import smooth_jpeg  # type: ignore[import-not-found]

    return [smooth_jpeg(i, size) for i in range(count)]


def bodies(server: str, workload: str, model_id: str, images: list[bytes]) -> list[dict[str, Any]]:
    """One-item request bodies, each server's own shape of the same OpenAI-style call."""
    if workload == "texts":
        if server == "infinity":
            return [{"model": model_id, "input": [t], "modality": "text"} for t in TEXTS]
        return [{"model": model_id, "input": [t]} for t in TEXTS]
    encoded = [base64.b64encode(jpeg).decode() for jpeg in images]
    if server == "infinity":
        return [
            {"model": model_id, "input": [f"data:image/jpeg;base64,{b}"], "modality": "image"}
            for b in encoded
        ]
    return [{"model": model_id, "input": [{"image": b}]} for b in encoded]


# --- the bare towers ------------------------------------------------------------------------
class Towers:
    """The model's forward passes alone in this process (no HTTP, no decoding), batch ``batch``."""

    def __init__(
        self, bundle: Any, onnx_dir: Path, threads: int, batch: int = 16, device: str = "cpu"
    ) -> None:
        import torch

        from service.inference.onnx_runtime import OnnxRuntime
        from service.inference.torch_runtime import TorchRuntime

        torch.set_num_threads(threads)
        if device == "cpu":
            self.runtimes = {
                "torch": TorchRuntime(bundle, device="cpu", precision="fp32"),
                "onnx": OnnxRuntime(onnx_dir, threads=threads),
            }
        else:  # a GPU: the project serves PyTorch there (bf16), as DIVA_RUNTIME=auto chooses
            self.runtimes = {"torch": TorchRuntime(bundle, device=device, precision="auto")}
        size = bundle.image_size
        rng = np.random.default_rng(0)
        self.inputs = {
            "images": rng.standard_normal((batch, 3, size, size)).astype(np.float32),
            "texts": np.asarray(bundle.tokenizer(TEXTS[:batch]).numpy(), dtype=np.int64),
        }
        self.counts: dict[tuple[str, str], float] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def measure(self, seconds: float) -> None:
        for runtime_name, runtime in self.runtimes.items():
            for workload, array in self.inputs.items():
                forward = runtime.encode_images if workload == "images" else runtime.encode_texts
                forward(array)
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < seconds:
                    forward(array)
                    done += len(array)
                key = (runtime_name, workload)
                self.counts[key] = self.counts.get(key, 0) + done
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def items_per_s(self, runtime: str, workload: str) -> float:
        return self.counts[(runtime, workload)] / self.seconds[(runtime, workload)]


# --- the run ----------------------------------------------------------------------------------
def compare(servers: dict[str, Any], model_id: str, images: list[bytes]) -> dict[str, float]:
    """Max abs difference between the servers' unit vectors for the same texts and images."""
    out = {}
    for workload in ("texts", "images"):
        vectors = []
        for name, server in servers.items():
            raw = [request_bytes(server.port, "/embeddings" if name == "infinity" else "/v1/embeddings", b)
                   for b in bodies(name, workload, model_id, images)]  # fmt: skip
            rows = asyncio.run(fetch_vectors(server.port, raw))
            vectors.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
        out[workload] = float(np.abs(vectors[0] - vectors[1]).max())
    return out


def measure(
    servers: dict[str, Any], towers: Towers, model_id: str, images: list[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    requests = {
        (name, workload): [
            request_bytes(server.port, "/embeddings" if name == "infinity" else "/v1/embeddings", body)
            for body in bodies(name, workload, model_id, images)
        ]
        for name, server in servers.items()
        for workload in ("texts", "images")
    }
    for (name, _workload), raw in requests.items():  # warm-up: first batches, thread pools, caches
        asyncio.run(run_load(servers[name].port, raw, 16, args.warmup))
    cells: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    order = list(servers)
    for round_index in range(args.rounds):
        towers.measure(args.tower_seconds)
        for workload in ("texts", "images"):
            for concurrency in args.concurrency:
                for name in order if round_index % 2 == 0 else order[::-1]:
                    pid = servers[name].process.pid
                    cpu_before = process_cpu_s(pid)
                    result = asyncio.run(
                        run_load(servers[name].port, requests[(name, workload)], concurrency, args.seconds)
                    )
                    result["cpu_ms_per_item"] = (
                        1000 * (process_cpu_s(pid) - cpu_before) / max(1, result["requests"])
                    )
                    cells.setdefault((name, workload, concurrency), []).append(result)
    table: dict[str, Any] = {}
    for (name, workload, concurrency), runs in cells.items():
        table.setdefault(workload, {}).setdefault(str(concurrency), {})[name] = {
            "items_per_s": float(np.median([r["items_per_s"] for r in runs])),
            "p50_ms": float(np.median([r["p50_ms"] for r in runs])),
            "p99_ms": float(np.median([r["p99_ms"] for r in runs])),
            "cpu_ms_per_item": float(np.median([r["cpu_ms_per_item"] for r in runs])),
            "errors": int(sum(r["errors"] for r in runs)),
        }
    return table


def report(table: dict[str, Any], towers: Towers, project_runtime: str) -> dict[str, Any]:
    # auto resolves to ONNX Runtime on CPU: prepare_model writes the export the registry looks for
    own_tower = {"project": "torch" if project_runtime == "torch" else "onnx", "infinity": "torch"}
    print(f"\n{'workload':<8} {'conc':>4} {'server':<9} {'items/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cpu ms':>6} {'of tower':>8} {'ratio':>6}")  # fmt: skip
    for workload, by_concurrency in table.items():
        for concurrency, by_server in by_concurrency.items():
            for name, cell in by_server.items():
                tower = towers.items_per_s(own_tower[name], workload)
                cell["fraction_of_tower"] = cell["items_per_s"] / tower
            ratio = by_server["project"]["items_per_s"] / by_server["infinity"]["items_per_s"]
            by_server["ratio"] = ratio
            for name in ("project", "infinity"):
                cell = by_server[name]
                print(
                    f"{workload:<8} {concurrency:>4} {name:<9} {cell['items_per_s']:>9.1f} "
                    f"{cell['p50_ms']:>8.1f} {cell['p99_ms']:>8.1f} {cell['cpu_ms_per_item']:>6.2f} "
                    f"{cell['fraction_of_tower']:>8.2f} "
                    f"{ratio if name == 'project' else float('nan'):>6.2f}"
                )
    towers_out = {
        f"{runtime}_{workload}": towers.items_per_s(runtime, workload)
        for runtime in towers.runtimes
        for workload in towers.inputs
    }
    print("bare towers, items/s at batch 16: " + ", ".join(f"{k} {v:.0f}" for k, v in towers_out.items()))
    return towers_out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="lab-clip-diva", help="Built-in or registry model to export.")
    parser.add_argument("--quick", action="store_true", help="About 2 minutes: 2 rounds of 2 s per cell.")
    parser.add_argument("--tiny", action="store_true", help="Seconds only (tests): concurrency 1 and 4.")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="Seconds per cell and round.")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--tower-seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--threads", type=int, default=1, help="Inference threads of both servers.")
    parser.add_argument(
        "--project-runtime",
        default="auto",
        help="The project's DIVA_RUNTIME: auto (its default: ONNX Runtime here, the bench writes the "
        "export), torch or onnx.",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU host (both servers).")
    parser.add_argument("--peers-venv", type=Path, default=PEERS_VENV)
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.tower_seconds = 2, 2.0, 1.0, 0.5
    if args.tiny:
        args.rounds, args.seconds, args.warmup, args.tower_seconds = 1, 0.5, 0.3, 0.1
        args.concurrency = "1,4"
    args.concurrency = [int(c) for c in str(args.concurrency).split(",")]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    python = infinity_python(args.peers_venv)
    if python is None:
        raise SystemExit(f"infinity is not importable in {args.peers_venv}: run `make peers-venv` first")
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "command": "python bench/peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "threads": args.threads,
        "project_runtime": args.project_runtime,
        "device": args.device,
    }
    with tempfile.TemporaryDirectory(prefix="diva-peers-") as tmp:
        work = Path(tmp)
        home = work / "home"
        bundle, hf_dir, model_id = prepare_model(args.model, home, work)
        images = jpegs(len(TEXTS))
        towers = Towers(bundle, home / "models" / model_id / "onnx", args.threads, device=args.device)
        servers = {
            "project": project_server(home, model_id, args, work),
            "infinity": infinity_server(python, hf_dir, model_id, args, work),
        }
        try:
            servers["project"].__enter__()
            servers["infinity"].start("/health")
            results["max_abs_diff"] = compare(servers, model_id, images)
            print("embeddings, max abs diff project vs infinity:", results["max_abs_diff"])
            results["table"] = measure(servers, towers, model_id, images, args)
        finally:
            for name, server in servers.items():
                if getattr(server, "process", None) is not None:
                    server.__exit__() if name == "project" else server.stop()
    project_runtime = args.project_runtime if args.device == "cpu" else "torch"
    results["towers"] = report(results["table"], towers, project_runtime)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    at16 = {w: results["table"][w].get("16", {}).get("ratio", float("nan")) for w in ("images", "texts")}
    print(f"peer ratio images {at16['images']:.2f} texts {at16['texts']:.2f}")
    return results


if __name__ == "__main__":
    main()
