"""PyTorch runtime: the open_clip model in inference mode (fp32 on CPU, bf16/fp16 on GPU)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from service.inference.preprocessing import ModelIO
from service.inference.spec import serving_cpu_threads

log = logging.getLogger("diva.torch_runtime")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def configure_cpu_threads(threads: int) -> int:
    """Set PyTorch's intra-op threads for a serving process (:func:`serving_cpu_threads`)."""
    threads = serving_cpu_threads(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def resolve_precision(precision: str, device: str) -> str:
    """'auto' -> fp32 on CPU (exact parity with open_clip), bf16 on GPU (throughput)."""
    if precision == "auto":
        return "fp32" if device == "cpu" else "bf16"
    if precision not in {"fp32", "bf16", "fp16"}:
        raise ValueError(f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16")
    return precision


class TorchRuntime:
    """Wraps one open_clip CLIP; arrays in, float32 arrays out (see ``EncoderRuntime``)."""

    name = "torch"

    def __init__(
        self,
        bundle: Any,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        cuda_graphs: bool = False,
        max_batch: int = 32,
    ) -> None:
        self.bundle = bundle
        self.model = bundle.model.eval().requires_grad_(False)
        self.device = torch.device(device)
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.model.to(self.device, dtype=self.dtype)
        scale = getattr(self.model, "logit_scale", None)
        self.logit_scale = float(scale.float().exp().item()) if scale is not None else 100.0
        bias = getattr(self.model, "logit_bias", None)
        self.logit_bias = float(bias.float().item()) if bias is not None else None
        self.memory_bytes = sum(
            t.numel() * t.element_size() for t in [*self.model.parameters(), *self.model.buffers()]
        )
        self.io = ModelIO(
            preprocess_cfg=dict(bundle.preprocess_cfg),
            tokenizer=bundle.tokenizer,
            context_length=bundle.context_length,
            embed_dim=bundle.embed_dim,
        )
        self.graphed_images = None
        if cuda_graphs and self.device.type == "cuda":
            self.graphed_images = self._capture(max_batch)
        self.trimmed_text = self._trimmed_text() if self.dtype == torch.float32 else None

    def _trimmed_text(self) -> Any:
        """The text tower on each batch's used positions (:mod:`trainer.backbones.text_trim`)."""
        from trainer.backbones.text_trim import pad_id_of, trimmed_text

        pad_id = pad_id_of(getattr(self.bundle, "model_cfg", {}))
        try:
            probe = torch.from_numpy(self.io.tokens(["a", "a red circle", "two small blue squares"]))
        except Exception:  # a tokenizer that cannot take these texts: no probe, no trimming
            return None
        return trimmed_text(self.model, pad_id, probe.to(self.device))

    def _capture(self, max_batch: int) -> Any:
        """CUDA graphs of the image tower, or None (eager) when capture fails: slower, never down."""
        from service.inference.cuda_graphs import GraphedTower

        size = self.io.image_size
        try:
            return GraphedTower(
                self.model.encode_image,
                (3, size, size),
                device=self.device,
                dtype=self.dtype,
                max_batch=max_batch,
            )
        except Exception:
            log.exception("CUDA graph capture failed; serving the image tower eagerly")
            return None

    @classmethod
    def load(
        cls,
        source: str,
        pretrained: str | None,
        *,
        device: str,
        precision: str,
        threads: int | None = None,
        cuda_graphs: bool = False,
        max_batch: int = 32,
    ) -> TorchRuntime:
        """Build from a model source; ``threads`` (CPU only) goes to :func:`configure_cpu_threads`."""
        from trainer.backbones.factory import create_clip

        device = resolve_device(device)
        if device == "cpu" and threads is not None:
            configure_cpu_threads(threads)
        bundle = create_clip(source, pretrained, device="cpu")
        return cls(
            bundle,
            device=device,
            precision=resolve_precision(precision, device),
            cuda_graphs=cuda_graphs,
            max_batch=max_batch,
        )

    @torch.inference_mode()
    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self.encode_image_tensor(torch.from_numpy(np.ascontiguousarray(pixels)))

    @torch.inference_mode()
    def encode_image_tensor(self, pixels: torch.Tensor) -> np.ndarray:
        """Tensor entry (already on the device, e.g. decoded on the GPU) -> float32 numpy."""
        pixels = pixels.to(self.device, dtype=self.dtype, non_blocking=True)
        tower = self.graphed_images or self.model.encode_image
        return tower(pixels).float().cpu().numpy()

    @torch.inference_mode()
    def encode_texts(self, tokens: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).to(self.device)
        encode = self.trimmed_text or self.model.encode_text
        return encode(ids).float().cpu().numpy()

    def close(self) -> None:
        self.graphed_images = None
        self.trimmed_text = None
        self.model = None  # type: ignore[assignment]
        self.bundle = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
