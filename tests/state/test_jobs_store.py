"""The job store on SQLite and on PostgreSQL: migrations, transitions, races, recovery queries."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from state.jobs import JobNotFound, JobStateError, JobStatus, JobStore, TooManyQueued
from state.jobs.db import dispose_engines, get_engine
from state.owners import Viewer, owner_of

PG_URL = os.environ.get("DIVA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_schema_url() -> Iterator[str]:
    """A private schema per test, so parallel runs and reruns never collide."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL answers at {PG_URL} (set DIVA_TEST_POSTGRES_URL): {exc.orig}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        yield JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
        dispose_engines()
    else:
        yield from (JobStore(url) for url in _postgres_schema_url())


def _new(store: JobStore, owner: str | None = None, **kw: object) -> str:
    job = store.create(
        base_model="lab-clip-base",
        dataset="ds-1",
        recipe="diva",
        diffusion="lab-sd",
        params={"steps": 4},
        owner=owner,
        **kw,  # type: ignore[arg-type]
    )
    return job.id


def test_migration_creates_schema_once(store: JobStore) -> None:
    from sqlalchemy import inspect

    job_id = _new(store)
    engine = get_engine(store.url)
    assert "jobs" in inspect(engine).get_table_names()
    assert "alembic_version" in inspect(engine).get_table_names()
    dispose_engines()  # a second process would migrate again: must be a no-op
    again = JobStore(store.url)
    assert again.get(job_id).status == "queued"


def test_lifecycle_success(store: JobStore) -> None:
    job_id = _new(store)
    store.mark_enqueued(job_id)
    claim = store.claim(job_id, "w1", stale_after_s=60)
    assert claim.job is not None and claim.job.attempts == 1
    assert store.heartbeat(job_id, "w1", {"step": 2, "total": 4, "loss": 0.5})
    assert store.get(job_id).progress == {"step": 2, "total": 4, "loss": 0.5}
    assert store.finish(job_id, "w1", JobStatus.succeeded, result_model="m-1", metrics={"a": 1.0})
    job = store.get(job_id)
    assert (job.status, job.result_model, job.metrics) == ("succeeded", "m-1", {"a": 1.0})
    assert job.finished_at is not None and job.finished_at >= job.created_at
    # a redelivered message for a finished job is a no-op
    assert store.claim(job_id, "w2", stale_after_s=60).job is None


def test_claim_refuses_live_holder_and_takes_over_stale_one(store: JobStore) -> None:
    job_id = _new(store)
    assert store.claim(job_id, "w1", stale_after_s=60).job is not None
    refused = store.claim(job_id, "w2", stale_after_s=60)
    assert refused.job is None and "w1" in refused.reason
    time.sleep(0.3)
    taken = store.claim(job_id, "w2", stale_after_s=0.1)
    assert taken.job is not None and taken.job.attempts == 2
    # the old holder has lost the job: its heartbeat and result are refused
    assert not store.heartbeat(job_id, "w1")
    assert not store.finish(job_id, "w1", JobStatus.failed, error="x")
    assert store.get(job_id).status == "running"


def test_cancel_queued_never_starts(store: JobStore) -> None:
    job_id = _new(store)
    assert store.request_cancel(job_id).status == "cancelled"
    assert store.claim(job_id, "w1", stale_after_s=60).job is None
    with pytest.raises(JobStateError, match="already cancelled"):
        store.request_cancel(job_id)


def test_cancel_running_sets_flag(store: JobStore) -> None:
    job_id = _new(store)
    store.claim(job_id, "w1", stale_after_s=60)
    assert not store.cancel_requested(job_id)
    assert store.request_cancel(job_id).status == "running"
    assert store.cancel_requested(job_id)
    assert store.finish(job_id, "w1", JobStatus.cancelled, message="stopped")


def test_queued_limit_per_owner(store: JobStore) -> None:
    alice, bob = owner_of("alice"), owner_of("bob")
    for _ in range(2):
        _new(store, owner=alice, max_queued=2)
    with pytest.raises(JobStateError, match="at most 2 queued"):
        _new(store, owner=alice, max_queued=2)
    _new(store, owner=bob, max_queued=2)
    assert store.count_queued(alice) == 2 and store.count_queued(bob) == 1
    assert len(store.list(viewer=Viewer(alice))) == 2


def test_concurrent_claims_have_one_winner(store: JobStore) -> None:
    job_id = _new(store)
    store.get(job_id)
    winners: list[str] = []

    def claim(name: str) -> None:
        if store.claim(job_id, name, stale_after_s=60).job is not None:
            winners.append(name)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert store.get(job_id).attempts == 1


def test_lost_jobs(store: JobStore) -> None:
    from state.jobs.models import utcnow

    never_sent = _new(store)
    sent = _new(store)
    store.mark_enqueued(sent)
    dead = _new(store)
    store.claim(dead, "w1", stale_after_s=60)
    done = _new(store)
    store.claim(done, "w2", stale_after_s=60)
    store.finish(done, "w2", JobStatus.succeeded)
    time.sleep(0.2)
    lost = {job.id for job in store.lost_jobs(stale_after_s=0.1, queued_before=utcnow() - timedelta(hours=1))}
    assert lost == {never_sent, dead}
    lost = {job.id for job in store.lost_jobs(stale_after_s=60, queued_before=utcnow())}
    assert lost == {never_sent, sent}


def test_unknown_job(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.get("nope")
    with pytest.raises(JobNotFound):
        store.request_cancel("nope")


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    from state.jobs.db import session_scope
    from state.jobs.models import Job

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    job_id = _new(store)
    reader_done = threading.Event()

    def read() -> None:
        store.get(job_id)
        reader_done.set()

    with session_scope(store.url) as session:  # holds SQLite's write lock until the block ends
        session.get(Job, job_id, with_for_update=True).message = "busy"  # type: ignore[union-attr]
        session.flush()
        reader = threading.Thread(target=read)
        reader.start()
        finished_while_locked = reader_done.wait(10)
    reader.join()
    dispose_engines()
    assert finished_while_locked


def test_release_returns_a_running_job_to_the_queue(store: JobStore) -> None:
    job_id = _new(store)
    store.claim(job_id, "w1", stale_after_s=60)
    assert not store.release(job_id, "w2", message="not mine")
    assert store.release(job_id, "w1", message="shutting down", progress={"step": 3, "total": 9})
    job = store.get(job_id)
    assert (job.status, job.worker, job.message, job.progress["step"]) == ("queued", None, "shutting down", 3)
    again = store.claim(job_id, "w2", stale_after_s=60)
    assert again.job is not None and again.job.attempts == 2


def test_another_owner_sees_no_job_and_admins_see_all(store: JobStore) -> None:
    alice, bob = owner_of("alice"), owner_of("bob")
    job_id = _new(store, owner=alice)
    assert store.get(job_id, Viewer(alice)).id == job_id
    with pytest.raises(JobNotFound):
        store.get(job_id, Viewer(bob))
    assert store.list(viewer=Viewer(bob)) == []
    assert [j.id for j in store.list(viewer=Viewer(bob, sees_all=True))] == [job_id]


def test_resume_requeues_cancelled_and_failed_jobs_only(store: JobStore) -> None:
    failed = _new(store)
    assert store.claim(failed, "w1", stale_after_s=60).job is not None
    store.heartbeat(failed, "w1", {"step": 3, "total": 8})
    store.finish(failed, "w1", JobStatus.failed, error="boom", progress={"step": 3, "total": 8})
    job = store.resume(failed)
    assert (job.status, job.error, job.worker, job.finished_at) == ("queued", None, None, None)
    assert "step 3" in (job.message or "")
    assert store.claim(failed, "w2", stale_after_s=60).job is not None  # runnable again
    with pytest.raises(JobStateError, match="only cancelled or failed"):
        store.resume(failed)  # running now

    cancelled = _new(store)
    store.request_cancel(cancelled)
    job = store.resume(cancelled)
    assert job.status == "queued" and not job.cancel_requested


def test_resume_respects_the_queued_limit(store: JobStore) -> None:
    alice = owner_of("alice")
    cancelled = _new(store, owner=alice)
    store.request_cancel(cancelled)
    _new(store, owner=alice)
    with pytest.raises(TooManyQueued):
        store.resume(cancelled, max_queued=1)
    assert store.get(cancelled).status == "cancelled"


def test_counts_progress_and_finished_before(store: JobStore) -> None:
    from datetime import timedelta

    from state.jobs.models import utcnow

    running, queued, done = _new(store), _new(store), _new(store)
    store.claim(running, "w1", stale_after_s=60)
    store.heartbeat(running, "w1", {"step": 2, "total": 9, "images_per_s": 4.0, "step_time_s": 0.5})
    store.claim(done, "w2", stale_after_s=60)
    store.finish(done, "w2", JobStatus.succeeded)
    counts = store.counts_by_status()
    assert counts == {"queued": 1, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert store.running_progress() == [
        {"job": running, "step": 2, "total": 9, "images_per_s": 4.0, "step_time_s": 0.5}
    ]
    assert [j.id for j in store.finished_before(utcnow() + timedelta(seconds=1))] == [done]
    assert store.finished_before(utcnow() - timedelta(hours=1)) == []
    assert queued not in {j.id for j in store.finished_before(utcnow() + timedelta(seconds=1))}
