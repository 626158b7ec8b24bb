"""Job gauges on /metrics: read from the shared job store at scrape time; a dead store is reported."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.core.metrics import JobsSource, Metrics
from state.jobs import JobStatus, JobStore
from state.jobs.db import dispose_engines
from state.settings import Settings


def test_gauges_follow_the_store(tmp_path: Path) -> None:
    from service.main import create_app

    settings = Settings(home=tmp_path / "home", device="cpu")
    store = JobStore(settings.resolved_database_url)
    kw = {"base_model": "m", "dataset": "d", "recipe": "r", "diffusion": "x", "params": {}}
    running, _queued = store.create(**kw).id, store.create(**kw).id
    store.claim(running, "w", stale_after_s=60)
    store.heartbeat(running, "w", {"step": 3, "total": 10, "images_per_s": 12.5, "step_time_s": 0.25})
    try:
        with TestClient(create_app(settings)) as client:
            text = client.get("/metrics").text
            assert "diva_jobs_store_up 1.0" in text
            assert 'diva_jobs{status="running"} 1.0' in text and 'diva_jobs{status="queued"} 1.0' in text
            assert 'diva_jobs{status="failed"} 0.0' in text
            assert f'diva_job_step_seconds{{job="{running}"}} 0.25' in text
            assert f'diva_job_images_per_second{{job="{running}"}} 12.5' in text
            assert "diva_job_queue_messages" not in text  # no broker configured
            assert "diva_jobs_submitted_total 0.0" in text
            store.finish(running, "w", JobStatus.succeeded)
            text = client.get("/metrics").text
            assert 'diva_jobs{status="succeeded"} 1.0' in text and "diva_job_step_seconds{" not in text
    finally:
        dispose_engines()


def test_a_store_that_fails_is_reported_not_raised() -> None:
    def broken() -> dict[str, int]:
        raise ConnectionError("database down")

    metrics = Metrics()
    metrics.watch_jobs(JobsSource(broken, list, lambda: 3))
    text = metrics.render().decode()
    assert "diva_jobs_store_up 0.0" in text and "diva_jobs{" not in text
    assert "diva_requests_total" in text  # the rest of the scrape still works


def test_queue_depth_reads_the_broker(tmp_path: Path) -> None:
    import shutil

    import pytest

    from state.queue import TRAIN_QUEUE, queue_depth
    from worker.embedded import RedisServer

    assert queue_depth("redis://127.0.0.1:1/0", timeout_s=0.2) is None
    executable = shutil.which("redis-server")
    if not executable:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis", executable=executable, persist=False)
    url = server.start()
    try:
        import redis

        redis.Redis.from_url(url).rpush(TRAIN_QUEUE, b"a", b"b")
        assert queue_depth(url) == 2
    finally:
        server.stop()
