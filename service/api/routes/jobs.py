"""``/v1/jobs``: submit post-training, follow it (JSON or server-sent events), cancel, resume.

The job store is written first, then the broker is told: a broker that is down, or an API that
dies in between, loses nothing (workers re-enqueue queued jobs without a message). Handlers
never import torch, except to validate a recipe on submit, off the event loop. A job, its
events and its dataset belong to the submitting key; another key's id is 404 (admins see all).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from service.api.deps import RegistryDep, SettingsDep, TrainScope
from service.api.routes.health import register_readiness_check
from service.core.errors import ApiError
from service.schemas.errors import error_responses
from service.schemas.jobs import JobAccepted, JobCreate, JobList, JobPublic
from state.catalog import ModelNotFound
from state.datasets import DatasetNotFound, DatasetStore
from state.jobs import Job, JobNotFound, JobStateError, JobStatus, JobStore, TooManyQueued
from state.owners import Viewer
from state.queue import create_celery, enqueue
from state.recipes import JobSetupError, build_train_config
from state.settings import Settings

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
SSE_POLL_S = 0.5
SSE_KEEPALIVE_S = 15.0


def _database_ready(app: Any) -> tuple[bool, str]:
    from sqlalchemy import text

    from state.jobs.db import get_engine, migrate

    url = app.state.settings.resolved_database_url
    migrate(url)
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))
    return True, f"job store reachable ({get_engine(url).dialect.name})"


def _broker_ready(app: Any) -> tuple[bool, str]:
    import redis

    url = app.state.settings.broker_url
    if not url:
        return True, "no broker configured: job submission is disabled"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return False, f"broker unreachable: {exc}"
    return True, "broker reachable"


register_readiness_check("database", _database_ready)
register_readiness_check("broker", _broker_ready)


def _store(settings: Settings) -> JobStore:
    return JobStore(settings.resolved_database_url)


def _celery(request: Request):  # -> Celery; created on first submit, kept on the app
    celery = getattr(request.app.state, "celery", None)
    if celery is None:
        celery = request.app.state.celery = create_celery(request.app.state.settings)
    return celery


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request_error", message)


def _validate(body: JobCreate, settings: Settings, registry: RegistryDep, caller: Viewer) -> str:
    """Every check that can fail before queueing; returns the diffusion id. Blocking."""
    try:
        base = registry.artifact(body.base_model, caller)
    except (ModelNotFound, ValueError) as exc:
        raise _invalid(f"base_model: {exc}") from None
    try:
        dataset = DatasetStore(settings.datasets_dir).get(body.dataset, caller)
    except DatasetNotFound as exc:
        raise _invalid(f"dataset: {exc}") from None
    if dataset.num_images < body.params.batch_size:
        raise _invalid(
            f"params.batch_size ({body.params.batch_size}) is larger than the dataset "
            f"({dataset.num_images} images): lower batch_size or upload more images"
        )
    diffusion = body.diffusion or settings.job_default_diffusion
    try:
        build_train_config(
            job_id="validation",
            base_model_dir=base.open_clip_dir,
            dataset_dir=settings.datasets_dir / body.dataset / "images",
            recipe=body.recipe,
            diffusion=diffusion,
            overrides=body.params.overrides(),
            settings=settings,
        )
    except (JobSetupError, ValueError) as exc:
        raise _invalid(str(exc)) from None
    return diffusion


async def _get(job_id: str, caller: Viewer, settings: Settings) -> Job:
    try:
        return await asyncio.to_thread(_store(settings).get, job_id, caller)
    except JobNotFound:
        raise ApiError.not_found(f"no job {job_id!r}") from None


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    responses=error_responses(422, 429, 503),
    summary="Queue a post-training job on an uploaded dataset",
)
async def submit_job(
    body: JobCreate, request: Request, settings: SettingsDep, registry: RegistryDep, caller: TrainScope
) -> JobAccepted:
    if not settings.broker_url:
        raise ApiError(
            503, "service_unavailable", "no job broker configured (DIVA_BROKER_URL); run `diva up`"
        )
    diffusion = await asyncio.to_thread(_validate, body, settings, registry, caller)
    store = _store(settings)
    try:
        job = await asyncio.to_thread(
            lambda: store.create(
                base_model=body.base_model,
                dataset=body.dataset,
                recipe=body.recipe,
                diffusion=diffusion,
                params=body.params.model_dump(exclude_none=True),
                publish=body.publish,
                owner=caller.owner,
                max_queued=settings.max_queued_jobs_per_key,
            )
        )
    except TooManyQueued as exc:
        raise ApiError(429, "rate_limit_error", str(exc)) from None
    await asyncio.to_thread(enqueue, _celery(request), store, job.id)
    request.app.state.metrics.jobs_submitted.inc()
    return JobAccepted(id=job.id)


@router.get("", response_model=JobList, summary="Jobs of this API key, newest first")
async def list_jobs(
    settings: SettingsDep,
    caller: TrainScope,
    status: JobStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> JobList:
    jobs = await asyncio.to_thread(_store(settings).list, viewer=caller, status=status, limit=limit)
    return JobList(data=[JobPublic.of(job) for job in jobs])


@router.get("/{job_id}", response_model=JobPublic, responses=error_responses(404))
async def get_job(job_id: str, settings: SettingsDep, caller: TrainScope) -> JobPublic:
    return JobPublic.of(await _get(job_id, caller, settings))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=error_responses(404, 409))
async def cancel_job(job_id: str, settings: SettingsDep, caller: TrainScope) -> JobPublic:
    """A queued job is cancelled at once; a running one stops at its next step (checkpoint kept)."""
    await _get(job_id, caller, settings)
    try:
        job = await asyncio.to_thread(_store(settings).request_cancel, job_id)
    except JobStateError as exc:
        raise ApiError(409, "conflict_error", str(exc)) from None
    return JobPublic.of(job)


@router.post(
    "/{job_id}/resume",
    status_code=202,
    response_model=JobPublic,
    responses=error_responses(404, 409, 429, 503),
    summary="Queue a cancelled or failed job again; it resumes from its last checkpoint",
)
async def resume_job(job_id: str, request: Request, settings: SettingsDep, caller: TrainScope) -> JobPublic:
    if not settings.broker_url:
        raise ApiError(
            503, "service_unavailable", "no job broker configured (DIVA_BROKER_URL); run `diva up`"
        )
    await _get(job_id, caller, settings)
    store = _store(settings)
    try:
        job = await asyncio.to_thread(store.resume, job_id, max_queued=settings.max_queued_jobs_per_key)
    except TooManyQueued as exc:
        raise ApiError(429, "rate_limit_error", str(exc)) from None
    except JobStateError as exc:
        raise ApiError(409, "conflict_error", str(exc)) from None
    await asyncio.to_thread(enqueue, _celery(request), store, job.id)
    return JobPublic.of(await asyncio.to_thread(store.get, job.id))


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **error_responses(404)},
    summary="Server-sent events: the job on every change, until it ends",
)
async def job_events(
    job_id: str, request: Request, settings: SettingsDep, caller: TrainScope
) -> StreamingResponse:
    await _get(job_id, caller, settings)
    return StreamingResponse(
        _events(job_id, request, settings),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(job_id: str, request: Request, settings: Settings) -> AsyncIterator[str]:
    store = _store(settings)
    last, quiet = "", 0.0
    while not await request.is_disconnected():
        job = await asyncio.to_thread(store.get, job_id)
        data = JobPublic.of(job).model_dump_json()
        if data != last:
            last, quiet = data, 0.0
            yield f"event: {'end' if job.is_terminal else 'job'}\ndata: {data}\n\n"
            if job.is_terminal:
                return
        elif quiet >= SSE_KEEPALIVE_S:
            quiet = 0.0
            yield f": keep-alive {json.dumps(job.status)}\n\n"
        await asyncio.sleep(SSE_POLL_S)
        quiet += SSE_POLL_S
