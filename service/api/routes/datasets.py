"""``/v1/datasets``: upload images (or one zip/tar) for post-training; read what was stored."""

from __future__ import annotations

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import JSONResponse

from service.api.deps import SettingsDep, TrainScope
from service.core.errors import ApiError, error_body
from service.datasets import DatasetLimits, DatasetNotFound, DatasetRejected, DatasetStore, Upload, ingest
from service.schemas.datasets import DatasetList, DatasetPublic
from service.schemas.errors import error_responses

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
    settings: SettingsDep, _: TrainScope, files: list[UploadFile] = File(...)
) -> DatasetPublic | JSONResponse:
    # A sync handler: decoding is CPU work, so FastAPI runs it on its thread pool.
    uploads = [Upload(file.filename or f"file-{i}", file.file) for i, file in enumerate(files)]
    try:
        manifest = ingest(uploads, DatasetStore(settings.datasets_dir), DatasetLimits.from_settings(settings))
    except DatasetRejected as exc:
        rejected = [r.model_dump() for r in exc.rejected]
        body = error_body(_TYPE_BY_STATUS.get(exc.status, "invalid_request_error"), exc.reason)
        if rejected:
            body["error"]["rejected"] = rejected
        return JSONResponse(body, status_code=exc.status)
    return DatasetPublic.of(manifest)


@router.get("", response_model=DatasetList, summary="List stored datasets")
def list_datasets(settings: SettingsDep, _: TrainScope) -> DatasetList:
    return DatasetList(data=[DatasetPublic.of(m) for m in DatasetStore(settings.datasets_dir).list()])


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=error_responses(404))
def get_dataset(dataset_id: str, settings: SettingsDep, _: TrainScope) -> DatasetPublic:
    try:
        return DatasetPublic.of(DatasetStore(settings.datasets_dir).get(dataset_id))
    except DatasetNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
