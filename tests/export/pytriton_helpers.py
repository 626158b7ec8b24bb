"""A real Triton server for the tests: the binary inside PyPI's ``nvidia-pytriton`` wheel.

The wheel bundles Triton 2.51 with the Python backend only, and it runs on CPU. It needs
numpy<2, so it lives in its own virtual environment, made on first use and cached outside the
repository (``~/.cache/diva-pytriton-venv/<version>-py<X.Y>``, or ``$DIVA_PYTRITON_VENV``), keyed
by version so reruns start in seconds and a fresh CI clone still builds it.

Three things make the bare binary work outside pytriton's own launcher (found by reading it):
the backend folder needs the stub built for this Python (``python_backend_stubs/<X.Y>``); the
stub embeds libpython, so on a pyenv Python ``LD_LIBRARY_PATH`` must reach that Python's lib
folder (else model loading fails); and the venv's ``bin`` goes first on ``PATH`` so the embedded
interpreter picks the venv (numpy<2, onnxruntime) as its prefix.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTRITON_VERSION = "0.7.0"
REQUIREMENTS = [f"nvidia-pytriton=={PYTRITON_VERSION}", "numpy<2", "onnxruntime>=1.20,<2"]


def venv_dir() -> Path:
    override = os.environ.get("DIVA_PYTRITON_VENV")
    if override:
        return Path(override)
    tag = f"{PYTRITON_VERSION}-py{sys.version_info.major}.{sys.version_info.minor}"
    return Path.home() / ".cache" / "diva-pytriton-venv" / tag


def ensure_pytriton_venv() -> Path:
    """Create (once, under a file lock) the venv with pytriton, numpy<2 and onnxruntime."""
    root = venv_dir()
    ready = root / ".diva-ready"
    if ready.is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file():
            return root
        shutil.rmtree(root, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base_python, "-m", "venv", str(root)], check=True)
        subprocess.run(
            [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *REQUIREMENTS],
            check=True,
            timeout=900,
        )
        _prepare_backends(root)
        ready.write_text(PYTRITON_VERSION + "\n")
    return root


def _site_packages(root: Path) -> Path:
    out = subprocess.check_output(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    )
    return Path(out.decode().strip())


def _prepare_backends(root: Path) -> None:
    """``<venv>/triton-backends/python``: the backend library, its utils and this Python's stub."""
    dist = _site_packages(root) / "pytriton" / "tritonserver"
    target = root / "triton-backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(dist / "backends" / "python" / name, target / name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy2(dist / "python_backend_stubs" / version / "triton_python_backend_stub", target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TritonServer:
    http_url: str
    grpc_url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def triton_server(repository: Path, log: Path, startup_s: float = 120.0) -> Iterator[TritonServer]:
    """Run ``tritonserver`` on ``repository`` (HTTP + gRPC on free ports) until the block ends."""
    root = ensure_pytriton_venv()
    site = _site_packages(root)
    libdir = subprocess.check_output(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"]
    )
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(
        p
        for p in (str(site / "nvidia_pytriton.libs"), libdir.decode().strip(), env.get("LD_LIBRARY_PATH"))
        if p
    )
    env["PATH"] = f"{root / 'bin'}:{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    http_port, grpc_port = _free_port(), _free_port()
    command = [
        str(site / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={root / 'triton-backends'}",
        "--backend-config=python,shm-default-byte-size=4194304",
        "--backend-config=python,shm-growth-byte-size=1048576",
        f"--http-port={http_port}",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--exit-timeout-secs=5",
    ]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = TritonServer(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, log)
    try:
        _wait_ready(server, startup_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: TritonServer, startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    url = f"http://{server.http_url}/v2/health/ready"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    tail = server.log.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"tritonserver did not become ready (exit code {server.process.poll()}):\n{tail}")
