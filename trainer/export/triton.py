"""Triton model repositories for the vision and text encoders.

Layout written by :func:`export_triton` (``<out>``)::

    onnx/                          visual.onnx, textual.onnx, preprocess.json (the source graphs)
    onnxruntime/                   repository for Triton builds with the onnxruntime backend
        <name>-visual/config.pbtxt, 1/model.onnx
        <name>-textual/config.pbtxt, 1/model.onnx
    python/                        the same models on the Python backend (ONNX Runtime inside
        <name>-visual/config.pbtxt, 1/model.onnx, 1/model.py     the Python stub), for Triton
        <name>-textual/...                                        builds without onnxruntime
    triton.json                    model names, inputs/outputs: what the service runtime reads

Point ``tritonserver --model-repository`` at ``onnxruntime/`` (or ``python/``). The configs are
built as ``ModelConfig`` protobuf messages (``tritonclient.grpc.model_config_pb2``, the schema the
server parses) and printed in text format, so a field typo cannot reach a server. Version folders
hard-link the ONNX files when the file system allows, so the two repositories cost one copy.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from trainer.backbones.factory import ClipBundle

TRITON_FILE = "triton.json"
BACKEND_MODEL = Path(__file__).resolve().parent / "triton_backend_model.py"
_TOWERS = {
    "visual": ("pixel_values", "TYPE_FP32", "image_embeds"),
    "textual": ("input_ids", "TYPE_INT64", "text_embeds"),
}


def export_triton(
    bundle: ClipBundle,
    out_dir: Path | str,
    *,
    name: str = "clip",
    fp16: bool = False,
    opset: int = 18,
    max_batch_size: int = 64,
    preferred_batch_sizes: Sequence[int] | None = None,
    max_queue_delay_us: int = 2000,
    instances: int = 1,
    kind: Literal["gpu", "cpu"] = "gpu",
    tensorrt: bool = False,
    towers: Sequence[str] = ("visual", "textual"),
) -> Path:
    """Write both Triton repositories for ``bundle`` under ``out_dir`` and return ``out_dir``.

    ``preferred_batch_sizes`` defaults to the powers of two from 8 up to ``max_batch_size``;
    ``tensorrt`` adds the TensorRT execution accelerator (fp16 when ``fp16``) to the onnxruntime
    configs (the Python variant ignores it); ``kind`` is where instances run.
    """
    from trainer.artifacts import check_model_id
    from trainer.export.onnx import export_onnx, read_preprocess

    check_model_id(name)
    if max_batch_size < 1 or instances < 1:
        raise ValueError("max_batch_size and instances must be at least 1")
    if kind not in ("gpu", "cpu"):
        raise ValueError(f"kind must be 'gpu' or 'cpu', got {kind!r}")
    preferred = sorted(set(preferred_batch_sizes or _powers_of_two(max_batch_size)))
    if any(size < 1 or size > max_batch_size for size in preferred):
        raise ValueError(f"preferred batch sizes {preferred} must lie in 1..{max_batch_size}")
    out = Path(out_dir)
    onnx_dir = export_onnx(bundle, out / "onnx", fp16=fp16, opset=opset, towers=towers)
    info = read_preprocess(onnx_dir)
    models: dict[str, str] = {}
    for tower, file in info["files"].items():
        model_name = f"{name}-{tower}"
        models[tower] = model_name
        dims = info["inputs"][tower][next(iter(info["inputs"][tower]))][1:]
        common = {
            "tower": tower,
            "dims": dims,
            "embed_dim": info["embed_dim"],
            "max_batch_size": max_batch_size,
            "preferred": preferred,
            "delay": max_queue_delay_us,
            "instances": instances,
            "kind": kind,
        }
        for backend in ("onnxruntime", "python"):
            folder = out / backend / model_name
            _link_or_copy(onnx_dir / file, folder / "1" / "model.onnx")
            hints = info.get("onnxruntime", {}).get("disabled_optimizers", [])
            config = model_config(
                model_name, backend, **common, tensorrt=tensorrt and backend == "onnxruntime", fp16=fp16,
                disabled_optimizers=hints,
            )  # fmt: skip
            (folder / "config.pbtxt").write_text(config)
            if backend == "python":
                shutil.copyfile(BACKEND_MODEL, folder / "1" / "model.py")
    manifest = {
        "models": models,
        "inputs": {tower: _TOWERS[tower][0] for tower in models},
        "outputs": {tower: _TOWERS[tower][2] for tower in models},
        "max_batch_size": max_batch_size,
        "repositories": ["onnxruntime", "python"],
        "preprocess": "onnx/preprocess.json",
    }
    (out / TRITON_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def model_config(
    model_name: str,
    backend: str,
    *,
    tower: str,
    dims: Sequence[int],
    embed_dim: int,
    max_batch_size: int,
    preferred: Sequence[int],
    delay: int,
    instances: int,
    kind: str,
    tensorrt: bool = False,
    fp16: bool = False,
    disabled_optimizers: Sequence[str] = (),
) -> str:
    """``config.pbtxt`` text for one tower, built as a ``ModelConfig`` message."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    input_name, input_type, output_name = _TOWERS[tower]
    config = pb.ModelConfig(name=model_name, backend=backend, max_batch_size=max_batch_size)
    config.input.add(name=input_name, data_type=pb.DataType.Value(input_type), dims=list(dims))
    config.output.add(name=output_name, data_type=pb.TYPE_FP32, dims=[embed_dim])
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = delay
    group = config.instance_group.add(count=instances)
    group.kind = pb.ModelInstanceGroup.KIND_GPU if kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    if backend == "python":
        config.parameters["onnx_file"].string_value = "model.onnx"
        config.parameters["disabled_optimizers"].string_value = ",".join(disabled_optimizers)
    if tensorrt:
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt"
        )
        accelerator.parameters["precision_mode"] = "FP16" if fp16 else "FP32"
        accelerator.parameters["max_workspace_size_bytes"] = str(1 << 30)
        accelerator.parameters["trt_engine_cache_enable"] = "1"
    return text_format.MessageToString(config)


def install_into_repository(
    export_dir: Path | str,
    repository: Path | str,
    *,
    backend: Literal["onnxruntime", "python"] = "onnxruntime",
) -> list[str]:
    """Put an export's model folders into a shared Triton repository (the one a server polls).

    Each folder is staged next to the repository and renamed into it, so a polling server never
    loads a half-copied model; an older version of the same model is replaced. Returns the names.
    """
    source = Path(export_dir) / backend
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is missing: export the model with format 'triton' first")
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    installed = []
    for model in sorted(p for p in source.iterdir() if p.is_dir()):
        staging = repository.parent / f".{repository.name}-{model.name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model, staging, copy_function=_link_or_copy_file)
        target = repository / model.name
        if target.exists():
            retired = repository.parent / f".{repository.name}-{model.name}.old"
            shutil.rmtree(retired, ignore_errors=True)
            target.rename(retired)
            shutil.rmtree(retired, ignore_errors=True)
        staging.rename(target)
        installed.append(model.name)
    return installed


def read_triton_manifest(folder: Path | str) -> dict[str, Any]:
    """``triton.json`` of an export (model names per tower), with a clear error when absent."""
    path = Path(folder) / TRITON_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: export the model with format 'triton' first")
    return json.loads(path.read_text())


def _powers_of_two(limit: int) -> list[int]:
    sizes, size = [], 8
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


def _link_or_copy_file(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    data = source.with_name(source.name + ".data")
    if data.is_file():  # external weights travel with the graph under the name it references
        _link_or_copy(data, target.with_name(data.name))
