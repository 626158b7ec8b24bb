"""ONNX export of a CLIP's two towers: ``visual.onnx`` and ``textual.onnx`` + ``preprocess.json``.

Contract read by the service's ONNX Runtime runtime and by the Triton repository:

* ``visual.onnx``: input ``pixel_values`` float32 [N, 3, H, W] (already normalised), output
  ``image_embeds`` float32 [N, D];
* ``textual.onnx``: input ``input_ids`` int64 [N, L], output ``text_embeds`` float32 [N, D];
  L is the context length, or, where ``preprocess.json`` says ``"text_length": "dynamic"`` (open_clip
  CLIPs with a causal text tower, :mod:`trainer.backbones.text_trim`), any L up to it: a caller may
  cut the columns that are padding in every row and get the same embeddings for less work;
* outputs are the model's projected embeddings, **not** L2-normalised; the batch axis is dynamic.

Why the dynamo exporter (``torch.onnx.export(dynamo=True)``): under ``torch.no_grad`` open_clip's
``nn.MultiheadAttention`` takes PyTorch's fused fast path (``aten::_native_multi_head_attention``),
which the legacy TorchScript exporter cannot translate (``UnsupportedOperatorError``); the dynamo
exporter decomposes it to plain MatMul/Softmax, handles >2 GB weights as external data and is the
supported path from PyTorch 2.9 on.

fp16: the fp32 graph is converted with ONNX Runtime's own float16 tool, keeping float32 inputs and
outputs so callers never change. ONNX Runtime 1.32's CPU provider crashes (segfault at session
creation) on these fp16 graphs with its default ``ORT_ENABLE_ALL`` level, inside the
``NchwcTransformer``; ``preprocess.json`` therefore lists it under ``onnxruntime.disabled_optimizers``
and :func:`ort_session` passes that on. GPU providers are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    import torch

    from trainer.backbones.factory import ClipBundle

VISUAL_FILE = "visual.onnx"
TEXTUAL_FILE = "textual.onnx"
PREPROCESS_FILE = "preprocess.json"
IMAGE_INPUT, IMAGE_OUTPUT = "pixel_values", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "input_ids", "text_embeds"
DEFAULT_OPSET = 18
FP16_CPU_DISABLED_OPTIMIZERS = ["NchwcTransformer"]
# Protobuf caps one file at 2 GiB; keep a margin for the graph itself.
_SINGLE_FILE_LIMIT = 1_800_000_000


class OnnxExportError(RuntimeError):
    """The model could not be exported or the exported graph does not match PyTorch."""


def export_onnx(
    bundle: ClipBundle,
    out_dir: Path | str,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    towers: Sequence[str] = ("visual", "textual"),
) -> Path:
    """Write ``visual.onnx``, ``textual.onnx`` and ``preprocess.json`` into ``out_dir``.

    ``towers`` limits the export (e.g. ``("visual",)`` for an MLLM deployment). Returns ``out_dir``.
    """
    import torch

    from trainer.backbones.text_trim import PrefixText, pad_id_of, supports_prefix

    unknown = set(towers) - {"visual", "textual"}
    if unknown or not towers:
        raise ValueError(f"towers must be a non-empty subset of ('visual', 'textual'), got {towers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = bundle.model.float().eval()
    height, width = _image_hw(bundle)
    batch = torch.export.Dim("batch", min=1, max=4096)
    files: dict[str, str] = {}
    text_length = "fixed"
    with torch.no_grad():
        if "visual" in towers:
            example = (torch.zeros(2, 3, height, width),)
            _export_one(
                _tower(model, "encode_image"),
                example,
                IMAGE_INPUT,
                IMAGE_OUTPUT,
                (batch,),
                out / VISUAL_FILE,
                opset,
            )
            files["visual"] = VISUAL_FILE
        if "textual" in towers:
            prefix = supports_prefix(model, pad_id_of(bundle.model_cfg))
            example = (_random_token_ids(bundle, 2, torch.Generator().manual_seed(0)),)
            _export_one(
                PrefixText(model).eval() if prefix else _tower(model, "encode_text"),
                example,
                TEXT_INPUT,
                TEXT_OUTPUT,
                (batch, torch.export.Dim("length", min=1, max=bundle.context_length)) if prefix else (batch,),
                out / TEXTUAL_FILE,
                opset,
            )
            files["textual"] = TEXTUAL_FILE
            text_length = "dynamic" if prefix else "fixed"
    if fp16:
        for name in files.values():
            _convert_fp16(out / name)
    (out / PREPROCESS_FILE).write_text(
        json.dumps(describe(bundle, fp16=fp16, opset=opset, files=files, text_length=text_length), indent=2)
    )
    return out


def describe(
    bundle: ClipBundle, *, fp16: bool, opset: int, files: dict[str, str], text_length: str = "fixed"
) -> dict[str, Any]:
    """What a consumer needs besides the graphs: preprocessing, tokenizer, output semantics."""
    from trainer.backbones.text_trim import pad_id_of

    cfg = bundle.preprocess_cfg
    height, width = _image_hw(bundle)
    logit_bias = getattr(bundle.model, "logit_bias", None)
    text_cfg = bundle.model_cfg.get("text_cfg", {})
    return {
        "architecture": bundle.architecture,
        "files": files,
        "precision": "fp16" if fp16 else "fp32",
        "opset": opset,
        "inputs": {
            "visual": {IMAGE_INPUT: ["N", 3, height, width]},
            "textual": {TEXT_INPUT: ["N", bundle.context_length]},
        },
        "outputs": {"visual": IMAGE_OUTPUT, "textual": TEXT_OUTPUT},
        "embed_dim": bundle.embed_dim,
        "normalized": False,
        "note": "outputs are not L2-normalised: divide by the norm before cosine similarity",
        "size": [height, width],
        "mean": list(bundle.mean),
        "std": list(bundle.std),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "resize_mode": cfg.get("resize_mode", "shortest"),
        "fill_color": cfg.get("fill_color", 0),
        "context_length": bundle.context_length,
        "text_length": text_length,
        "pad_id": pad_id_of(bundle.model_cfg),
        "tokenizer": text_cfg.get("hf_tokenizer_name") or "open_clip:SimpleTokenizer",
        "logit_scale": float(bundle.model.logit_scale.detach().exp().item()),
        "logit_bias": None if logit_bias is None else float(logit_bias.detach().item()),
        "onnxruntime": {"disabled_optimizers": FP16_CPU_DISABLED_OPTIMIZERS if fp16 else []},
    }


def read_preprocess(onnx_dir: Path | str) -> dict[str, Any]:
    """The ``preprocess.json`` written next to the graphs, with a clear error when absent."""
    path = Path(onnx_dir) / PREPROCESS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: export the model with format 'onnx' first")
    return json.loads(path.read_text())


def ort_session(
    path: Path | str, *, providers: Sequence[str] | None = None, threads: int | None = None
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session for one exported graph, honouring ``preprocess.json``'s hints."""
    import onnxruntime as ort

    path = Path(path)
    hints = read_preprocess(path.parent).get("onnxruntime", {})
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path),
        options,
        providers=list(providers or ["CPUExecutionProvider"]),
        disabled_optimizers=list(hints.get("disabled_optimizers", [])),
    )


def max_abs_diff(
    bundle: ClipBundle, onnx_dir: Path | str, batch_sizes: Sequence[int] = (1, 7, 32), seed: int = 0
) -> dict[str, float]:
    """Largest |ONNX Runtime - PyTorch| per tower and batch size, on random pixels and token ids.

    Keys are ``"visual@7"``-style. Used by the tests and by ``diva export --verify``.
    """
    import numpy as np
    import torch

    onnx_dir = Path(onnx_dir)
    info = read_preprocess(onnx_dir)
    model = bundle.model.float().eval()
    height, width = info["size"]
    generator = torch.Generator().manual_seed(seed)
    diffs: dict[str, float] = {}
    for tower, file in info["files"].items():
        session = ort_session(onnx_dir / file)
        for n in batch_sizes:
            if tower == "visual":
                feed = torch.randn(n, 3, height, width, generator=generator)
                with torch.no_grad():
                    expected = model.encode_image(feed)
            else:
                feed = _random_token_ids(bundle, n, generator)
                with torch.no_grad():
                    expected = model.encode_text(feed)
            name = session.get_inputs()[0].name
            got: np.ndarray = session.run(None, {name: feed.numpy()})[0]
            diffs[f"{tower}@{n}"] = float(np.abs(got - expected.numpy()).max())
    return diffs


def _tower(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """A module whose forward is one of the CLIP's encode methods (the graph's only entry)."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, clip: torch.nn.Module) -> None:
            super().__init__()
            self.clip = clip

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return getattr(self.clip, method)(inputs)

    return Tower(model).eval()


def _export_one(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    input_name: str,
    output_name: str,
    dims: tuple[Any, ...],
    path: Path,
    opset: int,
) -> None:
    """``dims``: the dynamic axes of the one input, in order (batch, then length for text)."""
    import torch

    n_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    try:
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=(dict(enumerate(dims)),),
            opset_version=opset,
            dynamo=True,
            external_data=n_bytes > _SINGLE_FILE_LIMIT,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types; name the tower that failed
        raise OnnxExportError(f"ONNX export of {path.stem} failed: {exc}") from exc


def _convert_fp16(path: Path) -> None:
    """fp32 graph -> fp16 weights and compute, float32 inputs/outputs kept (casts at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    converted = convert_float_to_float16(model, keep_io_types=True)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    n_bytes = sum(len(t.raw_data) for t in converted.graph.initializer)
    large = n_bytes > _SINGLE_FILE_LIMIT
    onnx.save(converted, str(path), save_as_external_data=large, location=data.name if large else None)


_WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "small",
    "red",
    "blue",
    "green",
    "dog",
    "cat",
    "two",
    "three",
    "left",
    "right",
    "under",
    "above",
    "car",
    "tree",
]


def _random_token_ids(bundle: ClipBundle, n: int, generator: torch.Generator) -> torch.Tensor:
    """Token ids of random sentences through the model's own tokenizer (valid ids, real padding)."""
    import torch

    sentences = []
    for _ in range(n):
        length = int(torch.randint(1, 12, (1,), generator=generator))
        picks = torch.randint(0, len(_WORDS), (length,), generator=generator).tolist()
        sentences.append(" ".join(_WORDS[i] for i in picks))
    return bundle.tokenizer(sentences).to(torch.int64)


def _image_hw(bundle: ClipBundle) -> tuple[int, int]:
    size = bundle.preprocess_cfg["size"]
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])
