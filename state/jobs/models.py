"""SQLAlchemy table of jobs. Progress lives in columns so a restarted API can show it at once."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite drops the zone; comparisons then break)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One post-training request and everything learnt while running it."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=JobStatus.queued.value)
    owner: Mapped[str | None] = mapped_column(String(64), index=True, doc="sha256 of the API key")
    base_model: Mapped[str] = mapped_column(String(128))
    dataset: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[str] = mapped_column(String(64))
    diffusion: Mapped[str] = mapped_column(String(128))
    publish: Mapped[str] = mapped_column(String(16), default="gate")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="times a worker claimed it")
    enqueues: Mapped[int] = mapped_column(Integer, default=0, doc="messages sent to the broker")
    worker: Mapped[str | None] = mapped_column(String(128), doc="claim holder: host:pid:nonce")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resumed_from_step: Mapped[int | None] = mapped_column(Integer)
    result_model: Mapped[str | None] = mapped_column(String(128))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text, doc="user-facing note, e.g. why not published")
    error: Mapped[str | None] = mapped_column(Text, doc="user-facing failure reason")

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def is_terminal(self) -> bool:
        return self.job_status in TERMINAL
