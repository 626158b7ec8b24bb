"""Export a registered model (or any loaded CLIP) to the formats other teams load.

One entry point, :func:`export_model`, so the CLI, the HTTP route and the worker share one code
path. Formats:

* ``open_clip``: ``open_clip_config.json`` + ``open_clip_model.safetensors`` (verified reload);
* ``hf``: a transformers ``CLIPModel`` / ``SiglipModel`` folder (``vision_only`` for
  ``CLIPVisionModel``), what LLaVA's ``mm_vision_tower`` reads;
* ``onnx``: ``visual.onnx`` + ``textual.onnx`` + ``preprocess.json``;
* ``triton``: a Triton model repository (onnxruntime backend + Python-backend variant).

Heavy libraries are imported inside the functions: importing this package costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.artifacts import ModelArtifact

if TYPE_CHECKING:
    from trainer.backbones.factory import ClipBundle

FORMATS = ("hf", "open_clip", "onnx", "triton")


class UnknownFormatError(ValueError):
    """The requested export format is not one of :data:`FORMATS`."""


def check_format(fmt: str) -> str:
    """Return ``fmt`` when it is a known format, else raise naming the choices."""
    if fmt not in FORMATS:
        raise UnknownFormatError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def load_bundle(source: ModelArtifact | ClipBundle | str | Path) -> ClipBundle:
    """A :class:`ClipBundle` from a registry artefact, an open_clip folder/name, or a bundle."""
    from trainer.backbones.factory import ClipBundle, create_clip

    if isinstance(source, ClipBundle):
        return source
    if isinstance(source, ModelArtifact):
        if not source.open_clip_dir.is_dir():
            raise FileNotFoundError(f"model {source.id!r} has no open_clip/ folder at {source.open_clip_dir}")
        return create_clip(str(source.open_clip_dir))
    return create_clip(str(source))


def export_model(
    source: ModelArtifact | ClipBundle | str | Path,
    format: str,
    out_dir: Path | str,
    **options: Any,
) -> Path:
    """Write ``source`` in ``format`` under ``out_dir`` and return the folder written.

    ``options`` go to the format's exporter: ``fp16``/``opset`` (onnx, triton), ``vision_only``
    (hf), ``max_batch_size``/``instances``/``tensorrt``/``backend`` (triton).
    """
    check_format(format)
    bundle = load_bundle(source)
    out = Path(out_dir)
    if format == "onnx":
        from trainer.export.onnx import export_onnx

        return export_onnx(bundle, out, **options)
    if format == "hf":
        from trainer.export.hf import export_hf

        return export_hf(bundle, out, **options)
    if format == "open_clip":
        from trainer.export.open_clip import export_open_clip

        if isinstance(source, ModelArtifact):
            options.setdefault("source_dir", source.open_clip_dir)
        return export_open_clip(bundle, out, **options)
    from trainer.export.triton import export_triton

    default_name = source.id if isinstance(source, ModelArtifact) else "clip"
    return export_triton(bundle, out, name=options.pop("name", None) or default_name, **options)


__all__ = ["FORMATS", "UnknownFormatError", "check_format", "export_model", "load_bundle"]
