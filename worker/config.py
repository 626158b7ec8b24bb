"""Celery configuration for long GPU jobs (Celery's task guide, Sentry's seer).

One training job per worker process at a time (prefetch 1), acknowledged only when finished
(``acks_late``) and requeued if the process dies (``reject_on_worker_lost``). The Redis
``visibility_timeout`` is longer than the longest job, or Redis would hand a running job to a
second worker; a worker that dies is detected by the job store's heartbeat instead (see
:mod:`worker.reconcile`), so no recovery waits for the visibility timeout.
"""

from __future__ import annotations

from typing import Any

from service.core.config import Settings

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
