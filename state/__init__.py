"""The shared floor: everything the gateway (``service``) and the workers (``worker``) both need.

    trainer  <-  state  <-  service, worker  <-  cli

- :mod:`state.settings`  every ``DIVA_*`` setting and the DIVA_HOME layout
- :mod:`state.owners`    who owns a resource and who may see it (one rule for every store)
- :mod:`state.jobs`      the job store (SQLAlchemy tables, locked transitions, Alembic migrations)
- :mod:`state.datasets`  the content-addressed, owner-scoped dataset store
- :mod:`state.catalog`   model id -> folder (registry, worker and CLI resolve through it)
- :mod:`state.recipes`   job params -> the trainer's TrainConfig
- :mod:`state.queue`     the Celery app, its configuration and ``enqueue``
- :mod:`state.retention` what may be deleted by age, with a dry run

Nothing here imports FastAPI, and nothing imports :mod:`service` or :mod:`worker`
(tests/test_layers.py fails on any such import).
"""
