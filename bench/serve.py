"""Serving benchmarks: every ratio measured side by side in one run (never asserted in tests).

CPU mode (default), on one model with random weights (``--arch``; default ``diva-bench-deep``, a
48-layer narrow ViT defined below, where one forward pass costs more than an HTTP round trip):

1. dynamic batching vs one-at-a-time: two real servers (``DIVA_BATCH_MAX_SIZE`` 32 vs 1), each
   under ``--clients`` concurrent HTTP clients sending one image per request; images/s ratio;
2. ONNX Runtime vs PyTorch runtime at batch 32 (the runtimes alone, same weights, interleaved);
3. ``/v1/classify``: a first call with a new label set vs repeated calls with the same set.

GPU mode (``--gpu``): ViT-L-14 @224 in bf16 with random weights (nothing is downloaded):
the tower alone at batch 256 vs end to end over HTTP (JPEG bytes in as multipart, embeddings
out, decoded on the GPU by nvJPEG: ``DIVA_IMAGE_DECODER=torchvision``), images/s ratio.
The same code runs on CPU with a tiny model for checking:
``python bench/serve.py --gpu --device cpu --arch diva-tiny-vit --precision fp32 --batch 32``.

Results print as a table and are written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
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
MODEL_ID = "bench-model"


# --- inputs ------------------------------------------------------------------------------------
def smooth_jpeg(seed: int, size: int, quality: int = 90) -> bytes:
    """A photo-like JPEG (smooth colour fields + a little noise), so sizes are realistic."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [
        np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 9)) for _ in range(3)
    ]
    pixels = (np.stack(channels, -1) + 1) * 110 + rng.normal(0, 6, (size, size, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# A small but deep ViT (12 layers, width 128, 17 tokens): at batch 1 its time goes to per-layer
# dispatch, not arithmetic, which is the regime where batching pays on a CPU. Big towers are
# compute bound on a CPU (batching cannot beat the FLOPs); tiny ones are HTTP bound.
BENCH_CONFIGS = {
    "diva-bench-vit": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 12, "width": 128, "patch_size": 16, "head_width": 64},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    # Deeper still: 48 layers, so one forward at batch 1 costs several HTTP round trips on a CPU.
    "diva-bench-deep": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 48, "width": 128, "patch_size": 16, "head_width": 64},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
}


def register_bench_configs(folder: Path) -> None:
    import open_clip

    for name, config in BENCH_CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def write_model(home: Path, arch: str) -> Any:
    """A random-weight model of ``arch`` in registry layout under ``home/models``."""
    import torch

    from trainer.backbones.factory import create_clip, write_model_folder

    torch.manual_seed(0)
    bundle = create_clip(arch)
    artifact = write_model_folder(
        bundle, home / "models", MODEL_ID, checksum=False, description="random weights for benchmarks"
    )
    return bundle, artifact


# --- a real server in a child process ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_child(process: subprocess.Popen, log: Any) -> None:
    """SIGTERM a server child (killed if it lingers 30 s), then close its log."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


class Server:
    """``uvicorn --factory service.main:create_app`` with DIVA_* overrides, ready when /readyz is."""

    def __init__(self, env: dict[str, str], log_path: Path, timeout_s: float = 300, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.env = {**os.environ, **env, "PYTHONPATH": path}
        self.log_path = log_path
        self.timeout_s = timeout_s
        self.workers = workers

    def __enter__(self) -> Server:
        return self.start().wait_ready()

    def start(self) -> Server:
        """Launch the child without waiting, so several servers can load their models side by side."""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "service.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if self.workers > 1:  # each worker process loads its own model and batches on its own
            command += ["--workers", str(self.workers)]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        return self

    def wait_ready(self) -> Server:
        """Block until /readyz reports the model loaded; stop the child and raise if it never does."""
        import httpx

        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:  # ready to serve models; the job checks (database, broker) do not matter here
                models = httpx.get(f"{self.url}/readyz", timeout=30).json()["checks"]["models"]
                if models["ok"]:
                    return self
                if "failed to load" in models["detail"]:
                    self.__exit__()
                    raise RuntimeError(f"server could not load its model: {models['detail']}")
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"server not ready after {self.timeout_s} s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        stop_child(self.process, self.log)

    def metrics(self) -> str:
        import httpx

        return httpx.get(f"{self.url}/metrics", timeout=10).text


def mean_batch_size(metrics: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = count = 0.0
    for family in text_string_to_metric_families(metrics):
        if family.name == "diva_batch_size":
            for sample in family.samples:
                if sample.labels.get("modality") == "image":
                    if sample.name.endswith("_sum"):
                        total += sample.value
                    elif sample.name.endswith("_count"):
                        count += sample.value
    return total / count if count else 0.0


async def load(
    url: str,
    path: str,
    body: bytes,
    content_type: str,
    *,
    clients: int,
    seconds: float,
    images_per_request: int,
) -> dict[str, float]:
    """``clients`` concurrent loops posting the same pre-encoded body for ``seconds``."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    done = errors = 0
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await http.post(path, content=body, headers={"Content-Type": content_type})
                if response.status_code == 200:
                    done += 1
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                    if errors == 1:
                        print(
                            f"  request failed: {response.status_code} {response.text[:300]}", file=sys.stderr
                        )

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "images_per_s": done * images_per_request / elapsed,
        "requests": done,
        "errors": errors,
        "p50_ms": float(np.percentile(latencies, 50) * 1000) if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99) * 1000) if latencies else float("nan"),
    }


def json_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def multipart_body(images: list[bytes], boundary: str = "divabenchboundary") -> tuple[bytes, str]:
    parts = []
    for i, data in enumerate(images):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{i}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="encoding_format"\r\n\r\nbase64\r\n'.encode()
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- CPU benchmarks ----------------------------------------------------------------------------
def bench_batching(home: Path, bundle: Any, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import base64

    from trainer.artifacts import ModelArtifact

    image = smooth_jpeg(1, 96)
    body = json_body({"model": MODEL_ID, "input": [{"image": base64.b64encode(image).decode()}]})
    results: dict[str, Any] = {"runtime": args.runtime}
    if args.runtime == "onnx":
        from trainer.export.onnx import export_onnx

        export_onnx(bundle, ModelArtifact.in_registry(home / "models", MODEL_ID).onnx_dir)
    for name, max_batch in (("one_at_a_time", 1), ("dynamic", 32)):
        env = {
            "DIVA_HOME": str(home),
            "DIVA_DEFAULT_MODEL": MODEL_ID,
            "DIVA_DEVICE": "cpu",
            "DIVA_RUNTIME": args.runtime,
            "DIVA_BATCH_MAX_SIZE": str(max_batch),
            "DIVA_BATCH_MAX_WAIT_MS": "5" if max_batch > 1 else "0",
        }
        with Server(env, work / f"server-{name}.log") as server:
            kwargs = {"clients": args.clients, "images_per_request": 1}
            asyncio.run(load(server.url, "/v1/embeddings", body, "application/json", seconds=2, **kwargs))
            results[name] = asyncio.run(
                load(server.url, "/v1/embeddings", body, "application/json", seconds=args.duration, **kwargs)
            )
            results[name]["mean_batch"] = mean_batch_size(server.metrics())
        print(
            f"  {name}: {results[name]['images_per_s']:.1f} images/s, "
            f"mean batch {results[name]['mean_batch']:.1f}"
        )
    results["ratio"] = results["dynamic"]["images_per_s"] / results["one_at_a_time"]["images_per_s"]
    onnx_dir = (
        ModelArtifact.in_registry(home / "models", MODEL_ID).onnx_dir if args.runtime == "onnx" else None
    )
    results["tower_alone"] = tower_batch_gain(bundle, seconds=min(args.duration, 5.0), onnx_dir=onnx_dir)
    print(
        "  ceiling, the tower alone in this process: "
        f"{results['tower_alone']['batch_1']:.1f} images/s at batch 1, "
        f"{results['tower_alone']['batch_32']:.1f} at batch 32"
    )
    return results


def tower_batch_gain(bundle: Any, seconds: float, onnx_dir: Path | None = None) -> dict[str, float]:
    """Images/s of the image tower alone at batch 1 and 32 (server thread settings, the server's
    runtime: ONNX Runtime when ``onnx_dir``): the most batching can give on this machine, before
    HTTP costs anything."""
    from service.inference.onnx_runtime import OnnxRuntime
    from service.inference.torch_runtime import TorchRuntime, configure_cpu_threads

    threads = configure_cpu_threads(0)
    runtime: Any = (
        OnnxRuntime(onnx_dir, threads=threads)
        if onnx_dir is not None
        else TorchRuntime(bundle, device="cpu", precision="fp32")
    )
    size = bundle.image_size
    out: dict[str, float] = {}
    for batch in (1, 32):
        pixels = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        runtime.encode_images(pixels)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            runtime.encode_images(pixels)
            done += batch
        out[f"batch_{batch}"] = done / (time.perf_counter() - started)
    out["gain"] = out["batch_32"] / out["batch_1"]
    return out


def bench_onnx(bundle: Any, artifact: Any, args: argparse.Namespace) -> dict[str, Any]:
    from service.inference.onnx_runtime import OnnxRuntime
    from service.inference.torch_runtime import TorchRuntime, configure_cpu_threads
    from trainer.export.onnx import export_onnx

    export_onnx(bundle, artifact.onnx_dir)
    threads = configure_cpu_threads(0)  # the server's default; both runtimes get the same count
    runtimes = {
        "torch": TorchRuntime(bundle, device="cpu", precision="fp32"),
        "onnx": OnnxRuntime(artifact.onnx_dir, threads=threads),
    }
    size = bundle.image_size
    pixels = np.random.default_rng(0).standard_normal((32, 3, size, size)).astype(np.float32)
    counts = {name: 0 for name in runtimes}
    seconds = {name: 0.0 for name in runtimes}
    for runtime in runtimes.values():
        runtime.encode_images(pixels)
    rounds = 6
    for _ in range(rounds):  # interleaved, so load from other processes hits both alike
        for name, runtime in runtimes.items():
            started = time.perf_counter()
            while time.perf_counter() - started < args.duration / rounds:
                runtime.encode_images(pixels)
                counts[name] += 32
            seconds[name] += time.perf_counter() - started
    results: dict[str, Any] = {name: {"images_per_s": counts[name] / seconds[name]} for name in runtimes}
    results["threads"] = threads
    for name in runtimes:
        print(f"  {name}: {results[name]['images_per_s']:.1f} images/s at batch 32")
    results["ratio"] = results["onnx"]["images_per_s"] / results["torch"]["images_per_s"]
    return results


def bench_classify(home: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import base64

    import httpx

    image = base64.b64encode(smooth_jpeg(2, 96)).decode()
    templates = ["a photo of a {}.", "a drawing of a {}.", "a close-up photo of the {}.", "a {} in a scene."]
    env = {"DIVA_HOME": str(home), "DIVA_DEFAULT_MODEL": MODEL_ID, "DIVA_DEVICE": "cpu"}
    first, repeated = [], []
    with (
        Server(env, work / "server-classify.log") as server,
        httpx.Client(base_url=server.url, timeout=300) as http,
    ):
        for trial in range(3):
            labels = [f"object {trial}-{i}" for i in range(args.labels)]
            body = {
                "model": MODEL_ID,
                "images": [image],
                "labels": labels,
                "templates": templates,
                "top_k": 5,
            }
            started = time.perf_counter()
            http.post("/v1/classify", json=body).raise_for_status()
            first.append(time.perf_counter() - started)
            for _ in range(5):
                started = time.perf_counter()
                http.post("/v1/classify", json=body).raise_for_status()
                repeated.append(time.perf_counter() - started)
    results = {
        "labels": args.labels,
        "templates": len(templates),
        "first_ms": float(np.median(first) * 1000),
        "repeated_ms": float(np.median(repeated) * 1000),
    }
    results["ratio"] = results["first_ms"] / results["repeated_ms"]
    print(f"  first {results['first_ms']:.1f} ms, repeated {results['repeated_ms']:.1f} ms")
    return results


# --- GPU benchmark -----------------------------------------------------------------------------
def bench_gpu(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from service.inference.torch_runtime import TorchRuntime

    runtime = TorchRuntime.load(args.arch, None, device=args.device, precision=args.precision, threads=0)
    size = runtime.io.image_size
    pixels = torch.randn(args.batch, 3, size, size, device=runtime.device, dtype=runtime.dtype)

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        for _ in range(3):
            runtime.model.encode_image(pixels)
        sync()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.tower_seconds:
            runtime.model.encode_image(pixels)
            done += args.batch
        sync()
        tower = done / (time.perf_counter() - started)
    print(f"  tower alone: {tower:.1f} images/s at batch {args.batch} ({args.precision}, {args.device})")
    runtime.close()
    del runtime, pixels
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()

    (work / "home").mkdir(exist_ok=True)
    images = [smooth_jpeg(i, args.jpeg_size) for i in range(args.images_per_request)]
    body, content_type = multipart_body(images)
    env = {
        "DIVA_HOME": str(work / "home"),
        "DIVA_MODELS": f"{MODEL_ID}={args.arch}",
        "DIVA_DEFAULT_MODEL": MODEL_ID,
        "DIVA_DEVICE": args.device,
        "DIVA_PRECISION": args.precision,
        "DIVA_IMAGE_DECODER": "torchvision",
        "DIVA_BATCH_MAX_SIZE": str(args.batch),
        "DIVA_BATCH_MAX_WAIT_MS": "10",
        "DIVA_BATCH_QUEUE_SIZE": str(args.batch * 64),
        "DIVA_MAX_INPUTS": str(max(256, args.images_per_request)),
        "DIVA_DECODE_WORKERS": str(args.decode_workers),
        "DIVA_MAX_REQUEST_BYTES": str(1 << 30),
        "DIVA_CUDA_GRAPHS": "1" if args.cuda_graphs else "0",
    }
    kwargs = {"clients": args.gpu_clients, "images_per_request": args.images_per_request}
    path = "/v1/embeddings/images"
    runs: dict[str, Any] = {}
    for workers in [int(w) for w in str(args.server_workers).split(",")]:
        with Server(env, work / f"server-gpu-{workers}.log", workers=workers) as server:
            asyncio.run(load(server.url, path, body, content_type, seconds=args.warmup, **kwargs))
            e2e = asyncio.run(load(server.url, path, body, content_type, seconds=args.duration, **kwargs))
            e2e["mean_batch"] = mean_batch_size(server.metrics())  # one worker's view when several
        e2e["server_workers"] = workers
        e2e["ratio"] = e2e["images_per_s"] / tower
        runs[str(workers)] = e2e
        print(
            f"  end to end, {workers} server process(es): {e2e['images_per_s']:.1f} images/s "
            f"({e2e['ratio']:.2f} of the tower), mean batch {e2e['mean_batch']:.1f}, "
            f"p50 {e2e['p50_ms']:.0f} ms, errors {e2e['errors']}"
        )
    best = max(runs.values(), key=lambda run: run["images_per_s"])
    return {
        "arch": args.arch,
        "precision": args.precision,
        "batch": args.batch,
        "jpeg_size": args.jpeg_size,
        "jpeg_bytes_mean": float(np.mean([len(i) for i in images])),
        "tower_images_per_s": tower,
        "end_to_end": best,
        "by_server_workers": runs,
        "ratio": best["ratio"],
    }


# --- entry point -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpu", action="store_true", help="GPU mode: tower alone vs end to end over HTTP.")
    parser.add_argument("--arch", default=None, help="open_clip architecture (random weights).")
    parser.add_argument("--device", default=None, help="GPU mode device (default cuda).")
    parser.add_argument("--precision", default=None, help="GPU mode precision (default bf16).")
    parser.add_argument("--batch", type=int, default=256, help="GPU mode batch size.")
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (CPU batching bench).")
    parser.add_argument("--duration", type=float, default=8.0, help="Seconds per measured phase.")
    parser.add_argument("--labels", type=int, default=256, help="Labels per classify call.")
    parser.add_argument("--tower-seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="GPU mode warm-up load, seconds.")
    parser.add_argument("--gpu-clients", type=int, default=12)
    parser.add_argument("--images-per-request", type=int, default=64)
    parser.add_argument("--jpeg-size", type=int, default=256)
    parser.add_argument("--decode-workers", type=int, default=8)
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="GPU mode: the server replays the tower as CUDA graphs."
    )
    parser.add_argument(
        "--server-workers",
        default="1",
        help="GPU mode: uvicorn processes, a comma list runs each (e.g. 1,4).",
    )
    parser.add_argument("--only", default="batching,onnx,classify", help="CPU mode: which benchmarks.")
    parser.add_argument(
        "--runtime",
        choices=["torch", "onnx"],
        default="torch",
        help="CPU batching bench: both servers' runtime (onnx: the model is exported first).",
    )
    parser.add_argument("--out", type=Path, default=None, help="Write results as JSON here.")
    args = parser.parse_args(argv)
    args.arch = args.arch or ("ViT-L-14" if args.gpu else "diva-bench-deep")
    args.device = args.device or ("cuda" if args.gpu else "cpu")
    args.precision = args.precision or ("bf16" if args.gpu else "fp32")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "command": "python bench/serve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "arch": args.arch,
    }
    with tempfile.TemporaryDirectory(prefix="diva-bench-") as tmp:
        work = Path(tmp)
        if args.gpu:
            import torch

            if args.device.startswith("cuda"):
                results["gpu"] = torch.cuda.get_device_name()
            print(f"GPU mode: {args.arch} {args.precision} on {args.device}")
            results["gpu_end_to_end"] = bench_gpu(args, work)
        else:
            home = work / "home"
            (work / "configs").mkdir()
            register_bench_configs(work / "configs")
            bundle, artifact = write_model(home, args.arch)
            only = set(args.only.split(","))
            if "batching" in only:
                print(f"dynamic batching vs one-at-a-time, {args.clients} clients, {args.arch}:")
                results["batching"] = bench_batching(home, bundle, args, work)
            if "onnx" in only:
                print("ONNX Runtime vs PyTorch, batch 32:")
                results["onnx_vs_torch"] = bench_onnx(bundle, artifact, args)
            if "classify" in only:
                print(f"/v1/classify, {args.labels} labels: first call vs repeated label set:")
                results["classify_cache"] = bench_classify(home, args, work)
    print("\nratios:")
    for key, target in (
        ("batching", 4.0),
        ("onnx_vs_torch", 1.3),
        ("classify_cache", 5.0),
        ("gpu_end_to_end", 0.7),
    ):
        if key in results:
            print(f"  {key:<16} {results[key]['ratio']:.2f}  (target >= {target})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
