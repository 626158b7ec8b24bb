"""Build the Celery app from :class:`Settings` (no instance at import time; see celery_app)."""

from __future__ import annotations

from celery import Celery

from service.core.config import Settings, get_settings
from worker.config import celery_config


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings``; tasks are registered from :mod:`worker.tasks`."""
    settings = settings or get_settings()
    app = Celery("diva", include=["worker.tasks"])
    app.conf.update(celery_config(settings))
    return app
