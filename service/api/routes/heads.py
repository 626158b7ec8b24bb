"""``/v1/heads``: fit a training-free few-shot head (GDA or Tip-Adapter) on a served encoder,
list, read and delete heads; ``/v1/classify`` uses one with ``"head": id``.

Fitting takes the train scope (it stores customer-derived data); a head belongs to the key that
fitted it, and another key's id answers 404 like one that does not exist (an admin sees all).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from service import heads
from service.api.deps import EngineDep, SettingsDep, TrainScope
from service.api.routes.embeddings import image_bytes
from service.core.errors import ApiError
from service.schemas.errors import error_responses
from service.schemas.heads import FitHeadRequest, HeadList, HeadPublic
from state.heads import HeadNotFound

router = APIRouter(prefix="/v1/heads", tags=["heads"])


@router.post(
    "",
    status_code=201,
    response_model=HeadPublic,
    responses=error_responses(400, 401, 403, 404, 413, 422, 429),
    summary="Fit a few-shot head from labelled images (or a folder-per-class dataset); no training",
)
async def fit_head(
    body: FitHeadRequest, request: Request, engine: EngineDep, settings: SettingsDep, caller: TrainScope
) -> HeadPublic:
    if body.examples is not None:
        examples = [(image_bytes(e.image, i, settings), e.label) for i, e in enumerate(body.examples)]
    else:
        examples = await asyncio.to_thread(heads.dataset_examples, settings, body.dataset or "", caller)
    model = await engine.model(body.model, None, caller)
    request.state.model = model.id
    head = await heads.fit(engine, model, examples, body)
    store = heads.head_store(settings)
    record = await asyncio.to_thread(
        store.put, head, name=body.name, model=model.id, owner=caller.owner, dataset=body.dataset
    )
    return HeadPublic.of(record)


@router.get("", response_model=HeadList, summary="Heads of this API key (optionally of one model)")
def list_heads(settings: SettingsDep, caller: TrainScope, model: str | None = None) -> HeadList:
    records = heads.head_store(settings).list(caller, model=model)
    return HeadList(data=[HeadPublic.of(r) for r in records])


@router.get("/{head_id}", response_model=HeadPublic, responses=error_responses(404))
def get_head(head_id: str, settings: SettingsDep, caller: TrainScope) -> HeadPublic:
    return HeadPublic.of(heads.get_record(settings, head_id, caller))


@router.delete("/{head_id}", status_code=204, responses=error_responses(404), summary="Delete a head")
def delete_head(head_id: str, settings: SettingsDep, caller: TrainScope) -> Response:
    try:
        heads.head_store(settings).delete(head_id, caller)
    except HeadNotFound as exc:
        raise ApiError(404, "head_not_found", str(exc)) from None
    return Response(status_code=204)
