"""``/v1/models``: what the registry serves (OpenAI's list shape plus encoder facts)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter

from service.api.deps import InferenceScope, RegistryDep
from service.core.errors import ApiError
from service.inference.registry import ModelNotFound, ModelRegistry, ModelSpec
from service.schemas.errors import error_responses
from service.schemas.models import ModelCard, ModelList

router = APIRouter(prefix="/v1/models", tags=["models"])


def _card(spec: ModelSpec, registry: ModelRegistry) -> ModelCard:
    info = spec.describe()
    created = info.pop("created", None)
    try:
        timestamp = int(datetime.fromisoformat(created).timestamp()) if created else 0
    except ValueError:
        timestamp = 0
    loaded = [runtime for model_id, runtime in registry.loaded() if model_id == spec.id]
    return ModelCard(created=timestamp, loaded_runtimes=loaded, **info)


@router.get("", response_model=ModelList, summary="List the models this server can serve")
async def list_models(registry: RegistryDep, _: InferenceScope) -> ModelList:
    specs = await asyncio.to_thread(registry.list)
    return ModelList(data=[_card(spec, registry) for spec in specs])


@router.get(
    "/{model_id}",
    response_model=ModelCard,
    responses=error_responses(404),
    summary="One model: base, recipe, dims, image size, eval results, lineage",
)
async def get_model(model_id: str, registry: RegistryDep, _: InferenceScope) -> ModelCard:
    try:
        spec = await asyncio.to_thread(registry.spec, model_id)
    except ModelNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    return _card(spec, registry)
