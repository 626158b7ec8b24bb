"""Dependency aliases for route handlers: settings, registry, auth scopes.

All are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, a
thread hop per dependency per request that cost more than the rest of a small request.

Use them as parameter annotations, e.g. ``def route(registry: RegistryDep, _: TrainScope)``.
Everything comes from ``request.app.state`` (set by :func:`service.main.create_app`), so one
process may host several apps with different settings (tests do).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.core.auth import Scope, check_key
from service.core.config import Settings
from service.core.errors import ApiError
from service.core.metrics import Metrics
from service.inference.engine import InferenceEngine
from service.inference.registry import ModelRegistry

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
    ) -> str | None:
        keys = request.app.state.api_keys
        if keys and credentials is None and request.headers.get("authorization"):
            raise ApiError(401, "authentication_error", "malformed Authorization header: send 'Bearer <key>'")
        return check_key(keys, credentials.credentials if credentials else None, scope)

    return dependency


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
InferenceScope = Annotated[str | None, Depends(_require(Scope.INFERENCE))]
"""The API key used (None when auth is off); 401/403 unless it may embed and classify."""
TrainScope = Annotated[str | None, Depends(_require(Scope.TRAIN))]
"""The API key used (None when auth is off); 401/403 unless it may train and export."""
