"""Request/response schemas of ``/v1/admin`` (retention)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RetentionRequest(BaseModel):
    """Ages in days; all unset means the server's policy (``DIVA_RETENTION_*``)."""

    model_config = ConfigDict(extra="forbid")

    datasets_older_than_days: float | None = Field(None, gt=0, le=36_500)
    models_older_than_days: float | None = Field(None, gt=0, le=36_500)
    jobs_older_than_days: float | None = Field(None, gt=0, le=36_500)
    dry_run: bool = Field(True, description="List what would be deleted and delete nothing.")


class RetentionItem(BaseModel):
    kind: Literal["dataset", "model", "job"]
    id: str
    bytes: int
    age_days: float


class RetentionResult(BaseModel):
    dry_run: bool
    items: list[RetentionItem] = Field(description="Planned (dry run) or deleted items.")
    bytes: int = Field(description="Bytes they hold (dry run) or freed.")
