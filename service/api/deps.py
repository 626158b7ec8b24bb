"""Dependency aliases for route handlers: settings, registry, auth scopes and the caller.

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, a
thread hop per dependency per request that cost more than the rest of a small request.

Use them as parameter annotations, e.g. ``def route(registry: RegistryDep, caller: TrainScope)``.
A scope dependency checks the key and yields the caller as a :class:`state.owners.Viewer`: the
one object every owner-scoped store takes, so each route scopes its reads the same way.
Everything comes from ``request.app.state`` (set by :func:`service.main.create_app`), so one
process may host several apps with different settings (tests do).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.core.auth import Scope, check_key
from service.core.errors import ApiError
from service.core.metrics import Metrics
from service.inference.engine import InferenceEngine
from service.inference.registry import ModelRegistry
from state.owners import Viewer
from state.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="API key from DIVA_API_KEYS")


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_engine(request: Request) -> InferenceEngine:
    return request.app.state.engine


def _require(scope: Scope):
    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Viewer:
        keys = request.app.state.api_keys
        if keys and credentials is None and request.headers.get("authorization"):
            raise ApiError(401, "authentication_error", "malformed Authorization header: send 'Bearer <key>'")
        key = check_key(keys, credentials.credentials if credentials else None, scope)
        admin = key is not None and Scope.ADMIN in keys.get(key, set())
        viewer = Viewer.of_key(key, auth_enabled=bool(keys), admin=admin)
        return viewer

    return dependency


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
InferenceScope = Annotated[Viewer, Depends(_require(Scope.INFERENCE))]
"""The caller; 401/403 unless its key may embed and classify (any caller when auth is off)."""
TrainScope = Annotated[Viewer, Depends(_require(Scope.TRAIN))]
"""The caller; 401/403 unless its key may train and export."""
AdminScope = Annotated[Viewer, Depends(_require(Scope.ADMIN))]
"""The caller; 401/403 unless its key is an admin's (sees every owner, applies retention)."""
