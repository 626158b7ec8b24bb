"""Celery tasks. Each takes a job id, re-reads the job from the store, and is idempotent.

Registered names (asserted by a test): ``diva.jobs.train`` and ``diva.jobs.reconcile``. Heavy
work lives in :mod:`worker.runner`, imported inside the task so a worker starts fast and the
API, which only sends messages, never imports torch through this module.
"""

from __future__ import annotations

import logging

from celery import shared_task, signals

from state.queue import RECONCILE_TASK, TRAIN_TASK
from state.settings import get_settings

log = logging.getLogger("diva.worker")


@shared_task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_job(self, job_id: str) -> str:
    """Run (or resume, or skip) one job; returns what happened, for the logs."""
    from worker.runner import run_job

    return run_job(job_id, get_settings())


@shared_task(name=RECONCILE_TASK, bind=True, ignore_result=True)
def reconcile_jobs(self) -> int:
    """Re-enqueue jobs the broker lost (for celery beat; workers also do it on their own)."""
    from worker.reconcile import reconcile

    return len(reconcile(self.app, get_settings()))


@signals.worker_ready.connect
def _start_reconciler(sender: object = None, **_: object) -> None:
    from worker.reconcile import start_reconciler

    app = getattr(sender, "app", None)
    if app is not None:
        start_reconciler(app, get_settings())


@signals.worker_shutting_down.connect
def _stop_reconciler(**_: object) -> None:
    from worker.reconcile import stop_reconciler
    from worker.runner import SHUTTING_DOWN

    SHUTTING_DOWN.set()  # a running job checkpoints at its next step and returns to the queue
    stop_reconciler()
