"""``/v1/embeddings`` (OpenAI-compatible JSON, texts and images) and ``/v1/embeddings/images``."""

from __future__ import annotations

import asyncio
import base64
from typing import Literal

import numpy as np
import orjson
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from service.api.deps import EngineDep, InferenceScope, SettingsDep
from service.core.errors import ApiError
from service.images import ImageDecodeError, decode_base64_image
from service.inference.engine import InferenceEngine, l2_normalize
from service.inference.registry import LoadedModel
from service.schemas.embeddings import EmbeddingRequest, EmbeddingResponse, ImageInput, TextInput
from service.schemas.errors import error_responses
from state.settings import Settings

router = APIRouter(prefix="/v1/embeddings", tags=["embeddings"])
_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429)


def check_count(count: int, settings: Settings, what: str = "inputs") -> None:
    if count > settings.max_inputs:
        raise ApiError.bad_request(f"too many {what}: {count}; the limit is {settings.max_inputs}")


def check_text(text: str, index: int, settings: Settings) -> str:
    if not text.strip():
        raise ApiError.bad_request(f"input {index}: empty text")
    if len(text) > settings.max_text_chars:
        raise ApiError.bad_request(
            f"input {index}: text has {len(text)} characters; the limit is {settings.max_text_chars}"
        )
    return text


def image_bytes(value: str, index: int, settings: Settings) -> bytes:
    try:
        return decode_base64_image(value, settings.max_image_bytes)
    except ImageDecodeError as exc:
        raise ApiError(400, "invalid_image", f"input {index}: {exc.reason}") from None


async def embed(
    engine: InferenceEngine,
    model: LoadedModel,
    texts: list[tuple[int, str]],
    images: list[tuple[int, bytes]],
) -> tuple[np.ndarray, int]:
    """Encode texts and images concurrently; rows in input order, plus the text token count."""
    total = len(texts) + len(images)
    out = np.empty((total, model.io.embed_dim), dtype=np.float32)
    tokens_used = 0

    async def do_texts() -> None:
        nonlocal tokens_used
        vectors, tokens_used = await engine.encode_texts(model, [t for _, t in texts])
        out[[i for i, _ in texts]] = vectors

    async def do_images() -> None:
        pixels = await engine.preprocess_images(model, images)
        out[[i for i, _ in images]] = await engine.encode_images(model, pixels)

    if texts and images:
        await asyncio.gather(do_texts(), do_images())
    else:  # one modality: awaited in this task (gather would wrap it in a task of its own)
        await (do_texts() if texts else do_images())
    return out, tokens_used


def render(
    vectors: np.ndarray, model_id: str, tokens: int, *, normalize: bool, encoding_format: str
) -> Response:
    """The OpenAI-shaped body, written by orjson straight from the float32 rows.

    Why not ``JSONResponse``: ``tolist()`` + the standard encoder cost about a tenth of a small
    model's whole request under load; orjson writes each float32 as the shortest decimal that
    reads back as the same float32 (fewer bytes than the float64 repr, the same vector).
    """
    if normalize:
        vectors = l2_normalize(vectors)
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        rows: list = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    else:
        rows = list(vectors)
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    body = {"object": "list", "data": data, "model": model_id, "usage": usage}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.post(
    "",
    response_model=EmbeddingResponse,
    responses=_ERRORS,
    summary="Embed texts and/or images (OpenAI-compatible)",
)
async def create_embeddings(
    body: EmbeddingRequest,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: InferenceScope,
    runtime: str | None = Query(None, description="Runtime override (wins over the body field)."),
) -> Response:
    items = [body.input] if isinstance(body.input, str) else body.input
    check_count(len(items), settings)
    texts: list[tuple[int, str]] = []
    images: list[tuple[int, bytes]] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            texts.append((index, check_text(item, index, settings)))
        elif isinstance(item, TextInput):
            texts.append((index, check_text(item.text, index, settings)))
        elif isinstance(item, ImageInput):
            images.append((index, image_bytes(item.image, index, settings)))
    model = await engine.model(body.model, runtime or body.runtime, caller)
    request.state.model = model.id
    if body.dimensions is not None and body.dimensions != model.io.embed_dim:
        raise ApiError.bad_request(
            f"dimensions={body.dimensions} is not supported: {model.id} embeds in {model.io.embed_dim}"
        )
    vectors, tokens = await embed(engine, model, texts, images)
    return render(vectors, model.id, tokens, normalize=body.normalize, encoding_format=body.encoding_format)


@router.post(
    "/images",
    response_model=EmbeddingResponse,
    responses=_ERRORS,
    summary="Embed uploaded image files (multipart field 'files')",
)
async def create_image_embeddings(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: InferenceScope,
    files: list[UploadFile] = File(description="One or more image files."),
    model: str | None = Form(None),
    normalize: bool = Form(True),
    encoding_format: Literal["float", "base64"] = Form("float"),
    runtime: str | None = Form(None),
    runtime_query: str | None = Query(None, alias="runtime"),
) -> Response:
    check_count(len(files), settings, "files")
    blobs = []
    for index, upload in enumerate(files):
        data = await upload.read(settings.max_image_bytes + 1)
        if len(data) > settings.max_image_bytes:
            raise ApiError(
                400, "invalid_image", f"input {index}: file is larger than {settings.max_image_bytes} bytes"
            )
        blobs.append((index, data))
    loaded = await engine.model(model, runtime_query or runtime, caller)
    request.state.model = loaded.id
    vectors, _tokens = await embed(engine, loaded, [], blobs)
    return render(vectors, loaded.id, 0, normalize=normalize, encoding_format=encoding_format)
