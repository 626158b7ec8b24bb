"""Celery tasks that run post-training jobs with ``trainer`` and publish the result.

The Celery app, its configuration and ``enqueue`` live on the shared floor (:mod:`state.queue`);
``worker.celery_app:app`` is the instance the ``celery`` command line needs; ``worker.tasks``
registers the tasks, ``worker.runner`` runs one job.
"""
