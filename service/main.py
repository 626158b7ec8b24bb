"""The FastAPI app factory. ``uvicorn --factory service.main:create_app`` serves it.

Nothing is built at import time: :func:`create_app` reads settings, scans the model folders
(manifests only) and wires middleware, error handlers and routers; the lifespan preloads the
default model off the event loop and frees models and threads on shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.core.auth import parse_api_keys
from service.core.errors import install_error_handlers
from service.core.logging import configure_logging
from service.core.metrics import JobsSource, Metrics
from service.core.middleware import RequestContextMiddleware
from service.inference.engine import InferenceEngine
from service.inference.registry import ModelRegistry
from state.jobs import JobStore
from state.queue import queue_depth
from state.settings import Settings, get_settings

log = logging.getLogger("diva.service")

DESCRIPTION = """CLIP-style encoders post-trained with diffusion feedback, served over REST.

OpenAI-compatible `/v1/embeddings` (texts and images), zero-shot `/v1/classify`, the model
registry under `/v1/models`, training jobs under `/v1/jobs`. Errors are always
`{"error": {"type": ..., "message": ...}}`.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    registry: ModelRegistry = app.state.registry
    if settings.default_model in {spec.id for spec in registry.list()}:
        try:
            await asyncio.to_thread(registry.get, settings.default_model)
        except Exception as exc:
            app.state.preload_error = f"{type(exc).__name__}: {exc}"
            log.exception("could not preload the default model", extra={"model": settings.default_model})
    if settings.gc_freeze:
        # Loaded models and the app are long-lived; without this every full collection walks them
        # again, and under load those passes landed inside requests (a tenth of the event loop's
        # time at concurrency 64, measured with py-spy). Objects made later are collected as usual.
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        app.state.decode_executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(registry.close)


def _jobs_source(settings: Settings) -> JobsSource:
    """The job gauges read the shared store; the broker's queue only when one is configured."""
    store = JobStore(settings.resolved_database_url)
    url = settings.broker_url
    return JobsSource(
        store.counts_by_status, store.running_progress, lambda: queue_depth(url) if url else None
    )


def _telemetry_option(settings: Settings) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry switch, where this FastAPI has one (0.160 on): off unless
    ``DIVA_OTEL``, since otherwise every request asks OpenTelemetry (through ``os.environ``)
    whether a provider is configured: 4 % of the event loop at concurrency 64."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if settings.otel:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (default: the environment's)."""
    settings = settings or get_settings()
    if settings.batch_queue_size < settings.max_inputs:
        raise ValueError(
            f"DIVA_BATCH_QUEUE_SIZE ({settings.batch_queue_size}) must be at least DIVA_MAX_INPUTS "
            f"({settings.max_inputs}), or a large request could never be queued"
        )
    configure_logging()
    metrics = Metrics()
    app = FastAPI(
        title="diva-serve",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        **_telemetry_option(settings),
    )
    app.state.settings = settings
    app.state.preload_error = None
    app.state.metrics = metrics
    app.state.api_keys = parse_api_keys(settings.api_keys)
    app.state.registry = ModelRegistry(
        settings, on_change=lambda: metrics.models_loaded.set(len(app.state.registry.loaded()))
    )
    app.state.decode_executor = ThreadPoolExecutor(max(1, settings.decode_workers), "diva-decode")
    app.state.engine = InferenceEngine(app.state.registry, settings, metrics, app.state.decode_executor)
    metrics.watch_jobs(_jobs_source(settings))
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        metrics=metrics,
        # Dataset uploads are spooled to disk and verified file by file: their own, larger limit
        # (plus room for multipart framing) instead of the inference-sized default.
        body_limits={"/v1/datasets": settings.dataset_max_bytes + (1 << 20)},
    )

    from service.api.router import api_router

    app.include_router(api_router)
    return app
