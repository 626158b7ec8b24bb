"""Real processes for end-to-end job tests: a private redis-server, a `celery worker`, uvicorn.

Nothing is mocked. One stack per test module (starting workers costs seconds on 2 cores); tests
restart single parts of it (SIGKILL the worker, restart Redis, restart the API) as they need.
Processes are stopped by pid; the shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

try:  # with or without tests/__init__.py
    from tests.e2e.support import LabHome, build_template, copy_home
except ImportError:
    from e2e.support import LabHome, build_template, copy_home
from worker.embedded import RedisServer, free_port

FAST_JOBS = {
    "DIVA_JOB_HEARTBEAT_S": "0.5",
    "DIVA_JOB_STALE_AFTER_S": "3",
    "DIVA_JOB_RECONCILE_INTERVAL_S": "1",
    "DIVA_JOB_PROGRESS_INTERVAL_S": "0.2",
    "DIVA_PUBLISH_PAIRS_PER_PATTERN": "2",
    "DIVA_DEVICE": "cpu",
    "DIVA_DEFAULT_MODEL": "tiny-base",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def debian_redis() -> str:
    found = shutil.which("redis-server")
    if not found:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server; .ci/run does it)")
    return found


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> LabHome:
    return build_template(tmp_path_factory.mktemp("lab-template") / "home")


class Proc:
    """A child process with its log file; stopped by pid."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            args, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""


class Stack:
    """DIVA_HOME + Redis + worker + API, each restartable."""

    def __init__(self, lab: LabHome, root: Path, env_extra: dict[str, str] | None = None) -> None:
        self.lab = lab
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(root / "redis", executable=debian_redis(), persist=False)
        self.redis.start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **FAST_JOBS,
            "DIVA_HOME": str(lab.home),
            "DIVA_BROKER_URL": self.redis.url,
            **(env_extra or {}),
        }
        self.env.pop("DIVA_API_KEYS", None)
        self.worker: Proc | None = None
        self.api: Proc | None = None
        self.client = httpx.Client(base_url=self.url, timeout=60)

    # --- parts ---------------------------------------------------------------------------------
    def start_worker(self) -> Proc:
        args = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool=solo",
                "--concurrency=1", "-Q", "train", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                f"--hostname=test-{time.monotonic_ns()}@%h"]  # fmt: skip
        self.worker = Proc("worker", args, self.env, self.logs)
        return self.worker

    def start_api(self) -> Proc:
        args = [sys.executable, "-m", "uvicorn", "--factory", "service.main:create_app",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        self.api = Proc("api", args, self.env, self.logs)
        self.wait_for(lambda: self._healthy(), 90, "the API to answer /healthz")
        return self.api

    def _healthy(self) -> bool:
        assert self.api is not None and self.api.alive(), self.api.tail() if self.api else ""
        try:
            return self.client.get("/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis = RedisServer(
            self.redis.data_dir, port=self.redis.port, executable=debian_redis(), persist=False
        )
        self.redis.start()

    def close(self) -> None:
        self.client.close()
        for proc in (self.api, self.worker):
            if proc is not None:
                proc.stop(signal.SIGKILL if proc is self.worker else signal.SIGTERM)
        self.redis.stop()

    def diagnostics(self) -> str:
        parts = [f"--- {p.name} log ---\n{p.tail()}" for p in (self.worker, self.api) if p is not None]
        return "\n".join(parts)

    # --- HTTP helpers --------------------------------------------------------------------------
    def submit(self, steps: int = 6, **extra: Any) -> str:
        body = {
            "base_model": "tiny-base",
            "dataset": self.lab.dataset,
            "recipe": "tiny",
            "diffusion": "tiny-sd",
            "params": {"steps": steps, "batch_size": 4, **extra.pop("params", {})},
            **extra,
        }
        response = self.client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_job(self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 180) -> dict:
        holder: dict[str, Any] = {}

        def check() -> bool:
            holder["job"] = self.job(job_id)
            return until(holder["job"])

        self.wait_for(check, timeout_s, f"job {job_id} (last seen: {holder.get('job')})")
        return holder["job"]

    def wait_done(self, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
        return self.wait_job(job_id, lambda j: j["status"] in {"succeeded", "failed", "cancelled"}, timeout_s)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{self.diagnostics()}")


@pytest.fixture(scope="module")
def stack(lab_template: LabHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    lab = copy_home(lab_template, root / "home")
    stack = Stack(lab, root)
    try:
        stack.start_worker()
        stack.start_api()
        yield stack
    finally:
        stack.close()
