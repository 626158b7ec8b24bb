"""Send a job's message to the broker. Light: the API imports this (no torch).

The row is committed *before* the message is sent, so a crash in between loses nothing: the
reconciler finds the queued row with no message and sends one.
"""

from __future__ import annotations

import logging

from celery import Celery

from service.jobs import JobStore
from worker.config import TRAIN_QUEUE, TRAIN_TASK

log = logging.getLogger("diva.jobs")


def enqueue(app: Celery, store: JobStore, job_id: str) -> bool:
    """True when the broker took the message; False leaves the job for the reconciler."""
    try:
        # ignore_result: no result-backend subscription, which retries for ~20 s when Redis is down
        app.send_task(TRAIN_TASK, args=[job_id], queue=TRAIN_QUEUE, retry=False, ignore_result=True)
    except Exception as exc:  # broker down: the store still has the job
        log.warning(
            "broker unreachable; job stays queued for the reconciler",
            extra={"job": job_id, "error": str(exc)},
        )
        return False
    store.mark_enqueued(job_id)
    return True
