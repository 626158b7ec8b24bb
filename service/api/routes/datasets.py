"""``/v1/datasets``: upload images (or one zip/tar) for post-training; read and delete them.

Datasets are customer images: each belongs to the key that uploaded it, and another key's id
answers 404 exactly like an id that does not exist (an admin key sees all).
"""

from __future__ import annotations

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.responses import JSONResponse

from service.api.deps import SettingsDep, TrainScope
from service.core.errors import ApiError, error_body
from service.datasets import DatasetLimits, DatasetRejected, Upload, ingest
from service.schemas.datasets import DatasetList, DatasetPublic
from service.schemas.errors import error_responses
from state.datasets import DatasetNotFound, DatasetStore

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
_TYPE_BY_STATUS = {413: "payload_too_large", 422: "invalid_request_error"}


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    responses=error_responses(413, 422),
    summary="Upload images, or one zip/tar of images; every file is decoded and verified",
)
def create_dataset(
    settings: SettingsDep, caller: TrainScope, files: list[UploadFile] = File(...)
) -> DatasetPublic | JSONResponse:
    # A sync handler: decoding is CPU work, so FastAPI runs it on its thread pool.
    uploads = [Upload(file.filename or f"file-{i}", file.file) for i, file in enumerate(files)]
    store, limits = DatasetStore(settings.datasets_dir), DatasetLimits.from_settings(settings)
    try:
        manifest = ingest(uploads, store, limits, owner=caller.owner)
    except DatasetRejected as exc:
        rejected = [r.model_dump() for r in exc.rejected]
        body = error_body(_TYPE_BY_STATUS.get(exc.status, "invalid_request_error"), exc.reason)
        if rejected:
            body["error"]["rejected"] = rejected
        return JSONResponse(body, status_code=exc.status)
    return DatasetPublic.of(manifest)


@router.get("", response_model=DatasetList, summary="Datasets of this API key")
def list_datasets(settings: SettingsDep, caller: TrainScope) -> DatasetList:
    return DatasetList(data=[DatasetPublic.of(m) for m in DatasetStore(settings.datasets_dir).list(caller)])


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=error_responses(404))
def get_dataset(dataset_id: str, settings: SettingsDep, caller: TrainScope) -> DatasetPublic:
    try:
        return DatasetPublic.of(DatasetStore(settings.datasets_dir).get(dataset_id, caller))
    except DatasetNotFound as exc:
        raise ApiError.not_found(str(exc)) from None


@router.delete(
    "/{dataset_id}",
    status_code=204,
    responses=error_responses(404),
    summary="Delete a dataset and the image blobs no other dataset uses",
)
def delete_dataset(dataset_id: str, settings: SettingsDep, caller: TrainScope) -> Response:
    try:
        DatasetStore(settings.datasets_dir).delete(dataset_id, caller)
    except DatasetNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    return Response(status_code=204)
