"""``/v1/models``: what the registry serves (OpenAI's list shape plus encoder facts), and deletes.

A trained model belongs to the key whose job made it: other keys neither list, read, use, export
nor delete it (404). Built-in and configured models are public and cannot be deleted.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Response

from service.api.deps import InferenceScope, RegistryDep, SettingsDep, TrainScope
from service.core.errors import ApiError
from service.inference.registry import ModelRegistry
from service.inference.spec import ModelSpec
from service.schemas.errors import error_responses
from service.schemas.models import ModelCard, ModelList
from state import catalog
from state.catalog import ModelNotDeletable, ModelNotFound

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
async def list_models(registry: RegistryDep, caller: InferenceScope) -> ModelList:
    specs = await asyncio.to_thread(registry.list, caller)
    return ModelList(data=[_card(spec, registry) for spec in specs])


@router.get(
    "/{model_id}",
    response_model=ModelCard,
    responses=error_responses(404),
    summary="One model: base, recipe, dims, image size, eval results, lineage",
)
async def get_model(model_id: str, registry: RegistryDep, caller: InferenceScope) -> ModelCard:
    try:
        spec = await asyncio.to_thread(registry.spec, model_id, caller)
    except ModelNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    return _card(spec, registry)


@router.delete(
    "/{model_id}",
    status_code=204,
    responses=error_responses(403, 404),
    summary="Delete a trained model (its folder, exports and loaded runtimes)",
)
async def delete_model(
    model_id: str, registry: RegistryDep, settings: SettingsDep, caller: TrainScope
) -> Response:
    try:
        spec = await asyncio.to_thread(registry.spec, model_id, caller)
        if spec.artifact is None:
            raise ModelNotDeletable(f"model {model_id!r} comes from DIVA_MODELS; remove it there")
        if not caller.can_see(spec.owner):  # a public model: every caller uses it, only admins remove it
            raise ModelNotDeletable(f"model {model_id!r} is public; only an admin key may delete it")
        await asyncio.to_thread(catalog.delete_model, model_id, settings)
    except ModelNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    except ModelNotDeletable as exc:
        raise ApiError(403, "permission_error", str(exc)) from None
    await asyncio.to_thread(registry.unload, model_id)
    return Response(status_code=204)
