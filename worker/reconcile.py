"""Re-enqueue what the broker lost: the job store is the truth, the broker only a doorbell.

Two ways a job loses its message: Redis restarted without persistence (queued messages gone),
or the worker running it died (SIGKILL, OOM, host loss; its message sits unacknowledged until
the long visibility timeout). Every worker checks on start and every
``job_reconcile_interval_s``: a queued job with no message in the broker, or a running job
whose heartbeat is older than ``job_stale_after_s``, gets a new message. Duplicates are harmless:
the task claims the job under a row lock and skips it when it is finished or alive elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from celery import Celery

from state.jobs import Job, JobStatus, JobStore
from state.jobs.models import utcnow
from state.queue import TRAIN_QUEUE, enqueue
from state.settings import Settings

log = logging.getLogger("diva.worker.reconcile")

_thread: threading.Thread | None = None
_stop = threading.Event()


def broker_messages(app: Celery) -> list[str] | None:
    """Raw text of every waiting and unacknowledged message (Redis only), or None if unknown."""
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            client = getattr(channel, "client", None)
            if client is None:
                return None
            queues = [TRAIN_QUEUE, *(channel._q_for_pri(TRAIN_QUEUE, p) for p in channel.priority_steps)]
            parts: list[bytes] = []
            for queue in dict.fromkeys(queues):
                parts.extend(client.lrange(queue, 0, -1))
            parts.extend(client.hvals(channel.unacked_key))
            return [part.decode("utf-8", "replace") for part in parts]
    except Exception as exc:
        log.warning("cannot inspect the broker", extra={"error": str(exc)})
        return None


def reconcile(app: Celery, settings: Settings) -> list[str]:
    """Send a message for every job the broker lost; return their ids."""
    store = JobStore(settings.resolved_database_url)
    grace = utcnow() - timedelta(seconds=settings.job_reconcile_interval_s)
    candidates = store.lost_jobs(stale_after_s=settings.job_stale_after_s, queued_before=grace)
    if not candidates:
        return []
    in_broker = broker_messages(app)
    sent: list[str] = []
    for job in candidates:
        if _has_message(job, in_broker):
            continue
        log.info("re-enqueueing job", extra={"job": job.id, "status": job.status})
        if enqueue(app, store, job.id):
            sent.append(job.id)
    return sent


def _has_message(job: Job, in_broker: list[str] | None) -> bool:
    if in_broker is None:
        return False  # unknown broker: resend; the claim makes duplicates harmless
    messages = sum(job.id in message for message in in_broker)
    if job.status == JobStatus.running.value:
        # its own unacked message belongs to the dead worker; only a fresh one counts
        return messages > 1
    return messages > 0


def start_reconciler(app: Celery, settings: Settings) -> threading.Thread:
    """Reconcile now and then every interval, on a daemon thread of the worker's main process."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return _thread
    _stop.clear()

    def loop() -> None:
        last_retention = float("-inf")
        while True:
            try:
                reconcile(app, settings)
            except Exception:
                log.exception("reconcile failed; retrying next interval")
            if time.monotonic() - last_retention >= settings.retention_interval_s:
                last_retention = time.monotonic()
                apply_retention(settings)
            if _stop.wait(settings.job_reconcile_interval_s):
                return

    _thread = threading.Thread(target=loop, name="diva-reconciler", daemon=True)
    _thread.start()
    return _thread


def apply_retention(settings: Settings) -> int:
    """Apply the configured retention policy (``DIVA_RETENTION_*``); items deleted, 0 when unset."""
    from state import retention

    policy = retention.RetentionPolicy.from_settings(settings)
    if policy.empty:
        return 0
    try:
        removed = retention.apply(settings, retention.plan(settings, policy))
    except Exception:
        log.exception("retention failed; retrying next interval")
        return 0
    for item in removed:
        log.info("retention deleted", extra={"kind": item.kind, "id": item.id, "bytes": item.bytes})
    return len(removed)


def stop_reconciler() -> None:
    _stop.set()
