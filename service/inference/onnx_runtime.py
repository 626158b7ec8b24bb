"""ONNX Runtime runtime: the exported ``onnx/visual.onnx`` + ``onnx/textual.onnx`` graphs.

The graphs and ``preprocess.json`` come from :func:`trainer.export.onnx.export_onnx` (its
docstring is the contract: float32 pixels / int64 ids in, unnormalised float32 embeddings out,
dynamic batch axis). Sessions honour the export's optimiser hints (fp16 on CPU), as the
exporter's ``ort_session`` does. Preprocessing stays the model's own: the registry
reads the model's ``open_clip/`` config, or ``preprocess.json`` when that is all there is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from service.inference.spec import RuntimeUnavailable
from trainer.backbones.text_trim import trim_padding


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntime:
    """One session per tower; a tower that was not exported raises when used."""

    name = "onnx"

    def __init__(self, onnx_dir: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        from trainer.export.onnx import read_preprocess

        self.onnx_dir = Path(onnx_dir)
        self.info: dict[str, Any] = read_preprocess(self.onnx_dir)
        providers = _providers(device)
        files = self.info.get("files", {})
        self._sessions = {
            tower: self._session(self.onnx_dir / file, providers, threads) for tower, file in files.items()
        }
        self._inputs = {tower: s.get_inputs()[0].name for tower, s in self._sessions.items()}
        self.logit_scale = float(self.info.get("logit_scale", 100.0))
        bias = self.info.get("logit_bias")
        self.logit_bias = None if bias is None else float(bias)
        self.memory_bytes = sum(p.stat().st_size for p in self.onnx_dir.glob("*.onnx*"))

    def _session(self, path: Path, providers: list[str], threads: int | None) -> Any:
        """Like the exporter's ``ort_session`` (same optimiser hints), with spinning off: idle ORT
        threads otherwise spin on the cores the decoders and the event loop need."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        disabled = self.info.get("onnxruntime", {}).get("disabled_optimizers", [])
        return ort.InferenceSession(
            str(path), options, providers=providers, disabled_optimizers=list(disabled)
        )

    @classmethod
    def load(cls, onnx_dir: Path, *, device: str = "cpu", threads: int | None = None) -> OnnxRuntime:
        if not (Path(onnx_dir) / "preprocess.json").is_file():
            raise RuntimeUnavailable(
                f"no ONNX export in {onnx_dir}: run `diva export MODEL --format onnx` first"
            )
        return cls(Path(onnx_dir), device=device, threads=threads)

    def _run(self, tower: str, array: np.ndarray) -> np.ndarray:
        session = self._sessions.get(tower)
        if session is None:
            raise RuntimeError(f"the ONNX export in {self.onnx_dir} has no {tower} tower")
        return session.run(None, {self._inputs[tower]: array})[0].astype(np.float32, copy=False)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self._run("visual", np.ascontiguousarray(pixels, dtype=np.float32))

    def encode_texts(self, tokens: np.ndarray) -> np.ndarray:
        if self.info.get("text_length") == "dynamic":  # the export takes a batch's used columns only
            tokens = trim_padding(tokens, int(self.info.get("pad_id", 0)))
        return self._run("textual", np.ascontiguousarray(tokens, dtype=np.int64))

    def close(self) -> None:
        self._sessions = {}
