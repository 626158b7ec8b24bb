"""Alembic environment: runs on the connection ``state.jobs.db.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from state.jobs.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through state.jobs.db.migrate(url)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
