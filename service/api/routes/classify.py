"""``/v1/classify``: zero-shot labels for images, with cached label embeddings, or a few-shot
head's labels when the request names one (``"head": id``, see ``/v1/heads``)."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Query, Request

from service import heads
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
    summary="Zero-shot (or few-shot head) classification: ranked labels with probabilities, best first",
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
    if body.head is not None:
        return await _with_head(body, request, engine, settings, caller, runtime)
    labels = body.labels or []
    templates = body.templates or list(DEFAULT_TEMPLATES)
    prompts = len(labels) * len(templates)
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
        engine.encode_images(model, pixels), engine.label_embeddings(model, labels, templates)
    )
    probabilities = engine.label_probabilities(model, images, classifier)
    return _ranked(model.id, labels, probabilities, body.top_k)


async def _with_head(body, request, engine, settings, caller, runtime) -> ClassifyResponse:
    """The head's labels (or the requested subset of them), scored by the head on this model."""
    record, head = heads.load_head(settings, body.head, caller)
    if body.model is not None and body.model != record.model:
        raise heads.unprocessable(
            f"head {record.id} was fitted on model {record.model!r}, not {body.model!r}"
        )
    if body.templates is not None:
        raise heads.unprocessable("templates do not apply to a head: its zero-shot term is fixed at fit time")
    labels = body.labels or head.labels
    unknown = [label for label in labels if label not in head.labels]
    if unknown:
        raise heads.unprocessable(f"labels not in head {record.id}: {unknown[:5]}; it knows {head.labels}")
    blobs = [(index, image_bytes(value, index, settings)) for index, value in enumerate(body.images)]
    model = await engine.model(record.model, runtime or body.runtime, caller)
    request.state.model = model.id
    features = await heads.encode(engine, model, [blob for _, blob in blobs])
    columns = [head.labels.index(label) for label in labels]
    logits = head.logits(features)[:, columns]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return _ranked(model.id, labels, exp / exp.sum(axis=1, keepdims=True), body.top_k)


def _ranked(
    model_id: str, labels: list[str], probabilities: np.ndarray, top_k: int | None
) -> ClassifyResponse:
    top_k = min(top_k or len(labels), len(labels))
    data = []
    for index, row in enumerate(probabilities):
        order = row.argsort()[::-1][:top_k]
        data.append({"index": index, "labels": [{"label": labels[j], "score": float(row[j])} for j in order]})
    return ClassifyResponse(model=model_id, data=data)
