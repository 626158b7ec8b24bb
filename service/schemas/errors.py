"""The error body every endpoint returns (documented once, referenced in OpenAPI)."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entry for the given error statuses."""
    return {status: {"model": ErrorResponse} for status in statuses}
