"""``GET /v1/models/{id}/export``: download a model as an archive (hf, open_clip or onnx).

An export already inside the model folder (written by the worker when it published the model)
is streamed as is; otherwise it is made once per model version under ``$DIVA_HOME/exports`` and
reused. The archive is an uncompressed tar streamed while it is written (weights do not compress
and a ViT-L folder is over a gigabyte), so memory stays flat whatever the model size.
"""

from __future__ import annotations

import asyncio
import queue
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service.api.deps import RegistryDep, SettingsDep, TrainScope
from service.core.errors import ApiError
from service.inference.spec import ModelSpec
from service.schemas.errors import error_responses
from state.catalog import ModelNotFound

if TYPE_CHECKING:
    from state.settings import Settings

router = APIRouter(prefix="/v1/models", tags=["exports"])

HttpFormat = Literal["hf", "open_clip", "onnx"]
_CHUNK = 1 << 20
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@router.get(
    "/{model_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-tar": {}}}, **error_responses(404, 422)},
    summary="Download the model as a tar archive (hf, open_clip or onnx)",
)
async def export_archive(
    model_id: str,
    registry: RegistryDep,
    settings: SettingsDep,
    caller: TrainScope,
    format: HttpFormat = Query(..., description="hf (transformers CLIPModel), open_clip or onnx."),
    vision_only: bool = Query(False, description="hf only: a CLIPVisionModel folder (what LLaVA loads)."),
    fp16: bool = Query(False, description="onnx only: fp16 weights (float32 inputs and outputs)."),
) -> StreamingResponse:
    try:
        spec = await asyncio.to_thread(registry.spec, model_id, caller)
    except ModelNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    options: dict[str, Any] = {}
    if format == "hf" and vision_only:
        options["vision_only"] = True
    if format == "onnx" and fp16:
        options["fp16"] = True
    folder = await asyncio.to_thread(prepared_export, spec, format, settings, options)
    suffix = "-vision" if options.get("vision_only") else "-fp16" if options.get("fp16") else ""
    name = f"{spec.id}-{format}{suffix}"
    return StreamingResponse(
        tar_stream(folder, name),
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{name}.tar"'},
    )


def prepared_export(spec: ModelSpec, fmt: str, settings: Settings, options: dict[str, Any]) -> Path:
    """The folder to archive: the model's own export when it matches, else a cached fresh one."""
    existing = _existing_export(spec, fmt, options)
    if existing is not None:
        return existing
    variant = fmt + "".join(f"-{key}" for key in sorted(options))
    dest = settings.exports_dir / spec.id / str(spec.version) / variant
    with _lock_for(str(dest)):
        if (dest / ".complete").is_file():
            return dest
        tmp = dest.with_name(f".{variant}.{uuid.uuid4().hex}")
        try:
            _export(spec, fmt, tmp, options)
        except ValueError as exc:  # unsupported architecture, bad option: the client's to fix
            _remove(tmp)
            raise ApiError(422, "unsupported_export", str(exc)) from None
        except Exception:
            _remove(tmp)
            raise
        (tmp / ".complete").write_text("ok\n")
        _remove(dest)
        tmp.replace(dest)
    return dest


def tar_stream(folder: Path, arcname: str) -> Iterator[bytes]:
    """Yield a tar of ``folder`` (entries under ``arcname/``) while a thread writes it."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    closed = threading.Event()

    class _Pipe:
        def write(self, data: bytes) -> int:
            while not closed.is_set():
                try:
                    chunks.put(bytes(data), timeout=1.0)
                    return len(data)
                except queue.Full:
                    continue
            raise BrokenPipeError("client went away")

    def writer() -> None:
        try:
            with tarfile.open(fileobj=_Pipe(), mode="w|", bufsize=_CHUNK) as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file() and path.name != ".complete":
                        archive.add(path, arcname=f"{arcname}/{path.relative_to(folder).as_posix()}")
            chunks.put(None)
        except BrokenPipeError:
            return
        except BaseException as exc:  # surfaced in the response generator
            chunks.put(exc)

    thread = threading.Thread(target=writer, name="diva-export-tar", daemon=True)
    thread.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()


def _existing_export(spec: ModelSpec, fmt: str, options: dict[str, Any]) -> Path | None:
    artifact = spec.artifact
    if artifact is None:
        return None
    if fmt == "open_clip" and artifact.open_clip_dir.is_dir():
        return artifact.open_clip_dir
    if fmt == "hf" and (artifact.hf_dir / "config.json").is_file():
        import json

        architectures = json.loads((artifact.hf_dir / "config.json").read_text()).get("architectures") or [""]
        vision_only = "Vision" in architectures[0]
        if vision_only == bool(options.get("vision_only")):
            return artifact.hf_dir
    if fmt == "onnx" and (artifact.onnx_dir / "preprocess.json").is_file():
        from trainer.export.onnx import read_preprocess

        wanted = "fp16" if options.get("fp16") else "fp32"
        if read_preprocess(artifact.onnx_dir).get("precision") == wanted:
            return artifact.onnx_dir
    return None


def _export(spec: ModelSpec, fmt: str, out: Path, options: dict[str, Any]) -> None:
    from trainer.export import export_model

    if spec.artifact is not None:
        export_model(spec.artifact, fmt, out, **options)
        return
    from trainer.backbones.factory import create_clip

    export_model(create_clip(spec.source, spec.pretrained), fmt, out, **options)


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
