"""The job queue: the Celery app, its configuration for long GPU jobs, and :func:`enqueue`.

Both sides use this module: the API enqueues (it never imports :mod:`worker`), the worker
consumes. The app names its tasks module by string (``include=["worker.tasks"]``), so building
it here pulls in no worker code until a worker process starts.

Configuration follows Celery's task guide (and Sentry's seer) for long jobs:
One training job per worker process at a time (prefetch 1), acknowledged only when finished
(``acks_late``) and requeued if the process dies (``reject_on_worker_lost``). The Redis
``visibility_timeout`` is longer than the longest job, or Redis would hand a running job to a
second worker; a worker that dies is detected by the job store's heartbeat instead (see
:mod:`worker.reconcile`), so no recovery waits for the visibility timeout.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from state.jobs import JobStore
from state.settings import Settings, get_settings

log = logging.getLogger("diva.jobs")

TRAIN_QUEUE = "train"
TRAIN_TASK = "diva.jobs.train"
RECONCILE_TASK = "diva.jobs.reconcile"


class BrokerNotConfigured(RuntimeError):
    """No broker URL: start one (``diva up`` embeds Redis) or set DIVA_BROKER_URL."""


def broker_url(settings: Settings) -> str:
    if not settings.broker_url:
        raise BrokerNotConfigured(
            "no broker configured: set DIVA_BROKER_URL=redis://host:port/0 or run `diva up`, "
            "which starts an embedded Redis"
        )
    return settings.broker_url


def celery_config(settings: Settings) -> dict[str, Any]:
    url = broker_url(settings)
    hard_limit = settings.job_time_limit_s + 1800  # evaluation and publishing come after training
    return {
        "broker_url": url,
        "result_backend": url,
        "task_ignore_result": True,  # the job store holds results; the backend only serves pings
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": TRAIN_QUEUE,
        "task_routes": {TRAIN_TASK: {"queue": TRAIN_QUEUE}, RECONCILE_TASK: {"queue": TRAIN_QUEUE}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_max_tasks_per_child": None,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_time_limit": hard_limit,
        "task_soft_time_limit": hard_limit - 60,
        "broker_transport_options": {"visibility_timeout": hard_limit + 3600},
        "result_backend_transport_options": {"visibility_timeout": hard_limit + 3600},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings``; tasks are registered from ``worker.tasks`` by name."""
    settings = settings or get_settings()
    app = Celery("diva", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


def enqueue(app: Celery, store: JobStore, job_id: str) -> bool:
    """Send a job's message; True when the broker took it, False leaves it for the reconciler.

    The row is committed *before* the message is sent, so a crash in between loses nothing: the
    reconciler finds the queued row with no message and sends one.
    """
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


def queue_depth(url: str, timeout_s: float = 1.0) -> int | None:
    """Messages waiting in the train queue of the Redis broker at ``url``; None if it is unreachable.

    Plain redis-py with short timeouts rather than a Celery connection, whose retries would hold
    a metrics scrape for seconds when the broker is down.
    """
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        return int(client.llen(TRAIN_QUEUE))
    except (redis.RedisError, ValueError):
        return None
