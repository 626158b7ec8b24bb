"""State transitions of jobs, each in one locked transaction (the store is the source of truth).

Workers and the API call these; Celery messages only say *which* job to look at. Every
transition re-reads the row under a lock, so duplicate messages, a cancel racing a claim, or
two workers redelivered the same job resolve to one winner.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from state.jobs.db import session_scope
from state.jobs.models import TERMINAL, Job, JobStatus, utcnow
from state.owners import SYSTEM, Viewer


class JobNotFound(LookupError):
    """No job with this id."""


class JobStateError(RuntimeError):
    """A transition the job's current state does not allow."""


class TooManyQueued(JobStateError):
    """The owner already holds ``max_queued`` queued jobs (the API answers 429)."""


@dataclass(frozen=True)
class Claim:
    """Outcome of a worker asking to run a job: ``job`` is set only when it may run it now."""

    job: Job | None
    reason: str


class JobStore:
    """Job rows behind one database URL; every method is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url

    # --- reads -------------------------------------------------------------------------------
    def get(self, job_id: str, viewer: Viewer = SYSTEM) -> Job:
        """The job, or :class:`JobNotFound` when it does not exist *or* ``viewer`` may not see it."""
        with session_scope(self.url, readonly=True) as session:
            job = session.get(Job, job_id)
            if job is None or not viewer.can_see(job.owner):
                raise JobNotFound(job_id)
            return job

    def list(
        self, *, viewer: Viewer = SYSTEM, status: JobStatus | None = None, limit: int = 100
    ) -> list[Job]:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if not viewer.sees_all:
            query = query.where(Job.owner.is_(None) if viewer.owner is None else Job.owner == viewer.owner)
        if status is not None:
            query = query.where(Job.status == status.value)
        with session_scope(self.url, readonly=True) as session:
            return list(session.scalars(query))

    def count_queued(self, owner: str | None) -> int:
        with session_scope(self.url, readonly=True) as session:
            return _queued_count(session, owner)

    def active(self) -> list[Job]:
        """Queued and running jobs: what retention must not pull the rug from under."""
        query = select(Job).where(Job.status.in_([JobStatus.queued.value, JobStatus.running.value]))
        with session_scope(self.url, readonly=True) as session:
            return list(session.scalars(query))

    def counts_by_status(self) -> dict[str, int]:
        """Jobs per status, every status present (zeros included): the metrics' gauges."""
        query = select(Job.status, func.count()).group_by(Job.status)
        with session_scope(self.url, readonly=True) as session:
            counts = {status.value: 0 for status in JobStatus}
            counts.update({status: int(n) for status, n in session.execute(query)})
            return counts

    def running_progress(self) -> list[dict[str, Any]]:
        """``{"job": id, **progress}`` of every running job (step time, images/s for metrics)."""
        query = select(Job.id, Job.progress).where(Job.status == JobStatus.running.value)
        with session_scope(self.url, readonly=True) as session:
            return [{"job": job_id, **progress} for job_id, progress in session.execute(query) if progress]

    def cancel_requested(self, job_id: str) -> bool:
        with session_scope(self.url, readonly=True) as session:
            flag = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            return bool(flag)

    # --- API-side transitions ----------------------------------------------------------------
    def create(
        self,
        *,
        base_model: str,
        dataset: str,
        recipe: str,
        diffusion: str,
        params: dict[str, Any],
        publish: str = "gate",
        owner: str | None = None,
        max_queued: int | None = None,
    ) -> Job:
        """Insert a queued job; with ``max_queued``, refuse when the owner already has that many."""
        with session_scope(self.url) as session:
            if max_queued is not None and _queued_count(session, owner) >= max_queued:
                raise TooManyQueued(f"at most {max_queued} queued jobs per API key; wait or cancel one")
            now = utcnow()
            job = Job(
                id=uuid.uuid4().hex,
                status=JobStatus.queued.value,
                owner=owner,
                base_model=base_model,
                dataset=dataset,
                recipe=recipe,
                diffusion=diffusion,
                publish=publish,
                params=params,
                created_at=now,
                updated_at=now,
                attempts=0,
                enqueues=0,
                cancel_requested=False,
            )
            session.add(job)
            return job

    def mark_enqueued(self, job_id: str) -> None:
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            job.enqueues += 1
            job.enqueued_at = utcnow()

    def request_cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once (it will never start); a running one is flagged."""
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.is_terminal:
                raise JobStateError(f"job {job_id} already {job.status}; nothing to cancel")
            job.cancel_requested = True
            if job.status == JobStatus.queued.value:
                job.status = JobStatus.cancelled.value
                job.finished_at = utcnow()
                job.message = "cancelled before it started"
            return job

    def resume(self, job_id: str, *, max_queued: int | None = None) -> Job:
        """Queue a cancelled or failed job again; the worker resumes from its last checkpoint.

        The run folder (checkpoints) of a cancelled or failed job is kept for exactly this; a
        succeeded job has published its model and dropped its checkpoints, so it cannot resume.
        """
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.status not in (JobStatus.cancelled.value, JobStatus.failed.value):
                raise JobStateError(f"job {job_id} is {job.status}; only cancelled or failed jobs resume")
            if max_queued is not None and _queued_count(session, job.owner) >= max_queued:
                raise TooManyQueued(f"at most {max_queued} queued jobs per API key; wait or cancel one")
            job.status = JobStatus.queued.value
            job.cancel_requested = False
            job.worker = None
            job.heartbeat_at = None
            job.finished_at = None
            job.error = None
            job.enqueued_at = None
            step = (job.progress or {}).get("step")
            job.message = f"resumed by request (last progress: step {step})" if step else "resumed by request"
            return job

    def finished_before(self, cutoff: datetime) -> list[Job]:
        """Terminal jobs that ended before ``cutoff`` (retention's candidates)."""
        query = select(Job).where(Job.status.in_([s.value for s in TERMINAL]), Job.finished_at < cutoff)
        with session_scope(self.url, readonly=True) as session:
            return list(session.scalars(query.order_by(Job.finished_at)))

    # --- worker-side transitions -------------------------------------------------------------
    def claim(self, job_id: str, worker: str, *, stale_after_s: float) -> Claim:
        """Take the job to run it, unless it is finished, cancelled or alive on another worker."""
        with session_scope(self.url) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return Claim(None, "no such job")
            if job.is_terminal:
                return Claim(None, f"already {job.status}")
            now = utcnow()
            if job.cancel_requested:
                job.status = JobStatus.cancelled.value
                job.finished_at = now
                job.message = job.message or "cancelled before it started"
                return Claim(None, "cancelled")
            if job.status == JobStatus.running.value and job.worker != worker:
                beat = job.heartbeat_at or job.started_at or now
                if now - beat < timedelta(seconds=stale_after_s):
                    return Claim(None, f"running on {job.worker}")
            job.status = JobStatus.running.value
            job.worker = worker
            job.attempts += 1
            job.started_at = job.started_at or now
            job.heartbeat_at = now
            return Claim(job, "claimed")

    def heartbeat(self, job_id: str, worker: str, progress: dict[str, Any] | None = None) -> bool:
        """Prove the holder lives (and persist progress). False once another worker took over."""
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.worker != worker or job.status != JobStatus.running.value:
                return False
            job.heartbeat_at = utcnow()
            if progress is not None:
                job.progress = progress
            return True

    def release(
        self, job_id: str, worker: str, *, message: str, progress: dict[str, Any] | None = None
    ) -> bool:
        """Hand a running job back to the queue (its worker is shutting down); False if not held."""
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.worker != worker or job.status != JobStatus.running.value:
                return False
            job.status = JobStatus.queued.value
            job.worker = None
            job.heartbeat_at = None
            job.message = message
            if progress is not None:
                job.progress = progress
            return True

    def set_resumed_from(self, job_id: str, step: int) -> None:
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.resumed_from_step is None or step > job.resumed_from_step:
                job.resumed_from_step = step

    def finish(
        self,
        job_id: str,
        worker: str,
        status: JobStatus,
        *,
        result_model: str | None = None,
        metrics: dict[str, Any] | None = None,
        message: str | None = None,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Record the end of the holder's run; False (no change) if it no longer holds the job."""
        if status not in TERMINAL:
            raise ValueError(f"{status} is not a final state")
        with session_scope(self.url) as session:
            job = _locked(session, job_id)
            if job.worker != worker or job.status != JobStatus.running.value:
                return False
            job.status = status.value
            job.finished_at = utcnow()
            job.result_model = result_model
            job.metrics = metrics
            job.message = message
            job.error = error
            if progress is not None:
                job.progress = progress
            return True

    # --- recovery ----------------------------------------------------------------------------
    def lost_jobs(self, *, stale_after_s: float, queued_before: datetime | None = None) -> Sequence[Job]:
        """Running jobs whose worker went silent, and queued jobs enqueued before ``queued_before``
        (or never): the candidates the broker may have lost."""
        now = utcnow()
        with session_scope(self.url, readonly=True) as session:
            running = select(Job).where(
                Job.status == JobStatus.running.value,
                Job.heartbeat_at < now - timedelta(seconds=stale_after_s),
            )
            queued = select(Job).where(Job.status == JobStatus.queued.value)
            if queued_before is not None:
                queued = queued.where((Job.enqueued_at.is_(None)) | (Job.enqueued_at < queued_before))
            return [*session.scalars(running), *session.scalars(queued.order_by(Job.created_at))]


def _locked(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(job_id)
    return job


def _queued_count(session: Session, owner: str | None) -> int:
    query = select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value)
    query = query.where(Job.owner.is_(None) if owner is None else Job.owner == owner)
    return int(session.scalar(query) or 0)
