"""Alembic migrations of the job store, driven from code (no alembic.ini): see ``db.migrate``."""
