"""Engine, sessions and schema migrations for the job store (SQLite by default, PostgreSQL too).

State transitions must not race (two workers claiming one job, a cancel landing during a claim),
so every write transaction takes a lock: ``SELECT ... FOR UPDATE`` on PostgreSQL, and on SQLite,
which has no row locks, ``BEGIN IMMEDIATE`` (the database write lock) through SQLAlchemy's
documented pysqlite recipe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
READONLY = "diva_readonly"
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (status polls, event streams) must not queue behind the write lock.
        readonly = connection.get_execution_options().get(READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def get_engine(url: str) -> Engine:
    """One engine per database URL per process (engines own connection pools)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = _sqlite_engine(url)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pool (tests; forked processes must not share connections)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (idempotent; safe from many processes)."""
    if url in _migrated:
        return
    from alembic import command
    from alembic.config import Config

    engine = get_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # API and workers may start together: serialise their migrations.
            connection.execute(text("SELECT pg_advisory_xact_lock(7260617)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    _migrated.add(url)


@contextmanager
def session_scope(url: str, *, readonly: bool = False) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    ``readonly`` sessions skip SQLite's write lock (plain ``BEGIN``); writers always take it.
    """
    migrate(url)
    engine = get_engine(url)
    if readonly:
        engine = engine.execution_options(**{READONLY: True})
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
