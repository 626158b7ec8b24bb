"""``/v1/classify``: zero-shot labels for images, with cached label embeddings."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from service.api.deps import EngineDep, InferenceScope, SettingsDep
from service.api.routes.embeddings import check_count, image_bytes
from service.core.errors import ApiError
from service.schemas.classify import DEFAULT_TEMPLATES, ClassifyRequest, ClassifyResponse
from service.schemas.errors import error_responses

router = APIRouter(prefix="/v1/classify", tags=["classify"])


@router.post(
    "",
    response_model=ClassifyResponse,
    responses=error_responses(400, 401, 403, 404, 413, 422, 429),
    summary="Zero-shot classification: ranked labels with probabilities, best first",
)
async def classify(
    body: ClassifyRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: InferenceScope,
    runtime: str | None = Query(None, description="Runtime override (wins over the body field)."),
) -> ClassifyResponse:
    check_count(len(body.images), settings, "images")
    templates = body.templates or list(DEFAULT_TEMPLATES)
    prompts = len(body.labels) * len(templates)
    if prompts > settings.max_label_prompts:
        raise ApiError.bad_request(
            f"too many label prompts (labels x templates): {prompts}; "
            f"the limit is {settings.max_label_prompts}"
        )
    blobs = [(index, image_bytes(value, index, settings)) for index, value in enumerate(body.images)]
    model = await engine.model(body.model, runtime or body.runtime, caller)
    request.state.model = model.id
    pixels = await engine.preprocess_images(model, blobs)
    images, classifier = await asyncio.gather(
        engine.encode_images(model, pixels), engine.label_embeddings(model, body.labels, templates)
    )
    probabilities = engine.label_probabilities(model, images, classifier)
    top_k = min(body.top_k or len(body.labels), len(body.labels))
    data = []
    for index, row in enumerate(probabilities):
        order = row.argsort()[::-1][:top_k]
        data.append(
            {"index": index, "labels": [{"label": body.labels[j], "score": float(row[j])} for j in order]}
        )
    return ClassifyResponse(model=model.id, data=data)
