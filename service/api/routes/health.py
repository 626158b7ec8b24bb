"""Liveness, readiness and Prometheus metrics.

Readiness runs every check in :data:`READINESS_CHECKS` (a name -> function table): the service
adds ``models``; the jobs area registers ``database`` and ``broker`` with
:func:`register_readiness_check`. A check takes the app and returns ``(ok, detail)``; it may be
blocking (it runs in a worker thread with a timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.core.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])

ReadinessCheck = Callable[[Any], tuple[bool, str]]
READINESS_CHECKS: dict[str, ReadinessCheck] = {}
CHECK_TIMEOUT_S = 5.0


def register_readiness_check(name: str, check: ReadinessCheck) -> None:
    """Add (or replace) a named check that ``/readyz`` runs."""
    READINESS_CHECKS[name] = check


def _models_ready(app: Any) -> tuple[bool, str]:
    """Ready when the default model is loaded, or when no default model is installed at all."""
    registry = app.state.registry
    default = app.state.settings.default_model
    known = {spec.id for spec in registry.list()}
    if default not in known:
        return True, f"default model {default!r} not installed; {len(known)} model(s) available"
    if any(model_id == default for model_id, _ in registry.loaded()):
        return True, f"default model {default!r} loaded"
    error = getattr(app.state, "preload_error", None)
    if error:
        return False, f"default model {default!r} failed to load: {error}"
    return False, f"default model {default!r} is still loading"


register_readiness_check("models", _models_ready)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: models loaded, broker and database reachable")
async def readyz(request: Request) -> JSONResponse:
    results: dict[str, dict[str, Any]] = {}
    for name, check in list(READINESS_CHECKS.items()):
        try:
            ok, detail = await asyncio.wait_for(asyncio.to_thread(check, request.app), CHECK_TIMEOUT_S)
        except asyncio.TimeoutError:
            ok, detail = False, f"check timed out after {CHECK_TIMEOUT_S} s"
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results[name] = {"ok": ok, "detail": detail}
    ready = all(r["ok"] for r in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": results}, 200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # Off the event loop: the job gauges read the job store.
    body = await asyncio.to_thread(request.app.state.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
