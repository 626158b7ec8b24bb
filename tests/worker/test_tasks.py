"""The Celery app: registered task names and the settings long GPU jobs depend on."""

from __future__ import annotations

import pytest

from state.queue import TRAIN_QUEUE, BrokerNotConfigured, celery_config, create_celery
from state.settings import Settings


def test_registered_task_names() -> None:
    app = create_celery(Settings(broker_url="redis://127.0.0.1:1/0"))
    app.loader.import_default_modules()
    ours = sorted(name for name in app.tasks if name.startswith("diva."))
    assert ours == ["diva.jobs.reconcile", "diva.jobs.train"]


def test_config_for_long_jobs() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", job_time_limit_s=7200)
    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["worker_concurrency"] == 1
    assert conf["task_routes"]["diva.jobs.train"] == {"queue": TRAIN_QUEUE}
    assert conf["task_time_limit"] > 7200 and conf["task_soft_time_limit"] < conf["task_time_limit"]
    # a job must never be redelivered while it still runs
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]


def test_no_broker_is_a_clear_error() -> None:
    with pytest.raises(BrokerNotConfigured, match="DIVA_BROKER_URL"):
        create_celery(Settings(broker_url=None))
