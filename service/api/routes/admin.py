"""``/v1/admin``: operator verbs across every owner (admin keys only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from service.api.deps import AdminScope, RegistryDep, SettingsDep
from service.core.errors import ApiError
from service.schemas.admin import RetentionItem, RetentionRequest, RetentionResult
from service.schemas.errors import error_responses
from state import retention

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/retention",
    response_model=RetentionResult,
    responses=error_responses(401, 403, 422),
    summary="Delete datasets, trained models and job folders by age (dry run by default)",
)
async def apply_retention(
    body: RetentionRequest, settings: SettingsDep, registry: RegistryDep, _: AdminScope
) -> RetentionResult:
    policy = retention.RetentionPolicy(
        body.datasets_older_than_days, body.models_older_than_days, body.jobs_older_than_days
    )
    if policy.empty:
        policy = retention.RetentionPolicy.from_settings(settings)
    if policy.empty:
        raise ApiError(
            422,
            "invalid_request_error",
            "no retention policy: give an age (e.g. datasets_older_than_days) or set DIVA_RETENTION_*",
        )
    items = await asyncio.to_thread(retention.plan, settings, policy)
    if not body.dry_run:
        items = await asyncio.to_thread(retention.apply, settings, items)
        for item in items:
            if item.kind == "model":
                await asyncio.to_thread(registry.unload, item.id)
    return RetentionResult(
        dry_run=body.dry_run,
        items=[RetentionItem(kind=i.kind, id=i.id, bytes=i.bytes, age_days=i.age_days) for i in items],
        bytes=sum(i.bytes for i in items),
    )
