"""The instance the ``celery`` command line loads: ``celery -A worker.celery_app worker``.

Celery's CLI needs a module-level app; everything else calls :func:`state.queue.create_celery`.
"""

from __future__ import annotations

from state.queue import create_celery

app = create_celery()
