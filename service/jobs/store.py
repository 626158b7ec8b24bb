"""State transitions of jobs, each in one locked transaction (the store is the source of truth).

Workers and the API call these; Celery messages only say *which* job to look at. Every
transition re-reads the row under a lock, so duplicate messages, a cancel racing a claim, or
two workers redelivered the same job resolve to one winner.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.jobs.db import session_scope
from service.jobs.models import TERMINAL, Job, JobStatus, utcnow


class JobNotFound(LookupError):
    """No job with this id."""


class JobStateError(RuntimeError):
    """A transition the job's current state does not allow."""


@dataclass(frozen=True)
class Claim:
    """Outcome of a worker asking to run a job: ``job`` is set only when it may run it now."""

    job: Job | None
    reason: str


def owner_of(api_key: str | None) -> str | None:
    """Jobs remember who submitted them by key digest, never by the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else None


class JobStore:
    """Job rows behind one database URL; every method is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url

    # --- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        with session_scope(self.url, readonly=True) as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            return job

    def list(
        self, *, owner: str | None = None, status: JobStatus | None = None, limit: int = 100
    ) -> list[Job]:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if owner is not None:
            query = query.where(Job.owner == owner)
        if status is not None:
            query = query.where(Job.status == status.value)
        with session_scope(self.url, readonly=True) as session:
            return list(session.scalars(query))

    def count_queued(self, owner: str | None) -> int:
        query = select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value)
        query = query.where(Job.owner.is_(None) if owner is None else Job.owner == owner)
        with session_scope(self.url, readonly=True) as session:
            return int(session.scalar(query) or 0)

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
            if max_queued is not None:
                query = select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value)
                query = query.where(Job.owner.is_(None) if owner is None else Job.owner == owner)
                if int(session.scalar(query) or 0) >= max_queued:
                    raise JobStateError(f"at most {max_queued} queued jobs per API key; wait or cancel one")
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
