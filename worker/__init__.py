"""Celery app and tasks that run post-training jobs with ``trainer`` and publish the result.

``worker.app.create_celery`` builds the app; ``worker.celery_app:app`` is the instance the
``celery`` command line needs; ``worker.enqueue`` sends jobs (light: the API imports it).
"""
