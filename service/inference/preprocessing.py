"""The model's own preprocessing and tokenizer, so served embeddings equal open_clip's.

Images go through :func:`trainer.backbones.factory.eval_transform` built from the preprocess
config stored with the model (the same code path open_clip uses for its validation transform);
texts through the model's open_clip tokenizer. Both run in the gateway, whatever the runtime,
which then only ever sees arrays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class ModelIO:
    """Turns PIL images and strings into the arrays an :class:`EncoderRuntime` accepts."""

    preprocess_cfg: dict[str, Any]
    tokenizer: Callable[..., Any]
    context_length: int
    embed_dim: int

    def __post_init__(self) -> None:
        from torchvision.transforms import Compose

        from trainer.backbones.factory import eval_transform

        self._transform = eval_transform(self.preprocess_cfg)
        self._pil_steps, self._mean, self._std = _numpy_tail(self._transform)
        self._tensor_tail = Compose(self._transform.transforms[-2:]) if self._pil_steps is not None else None

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg["size"]
        return int(size if isinstance(size, int) else size[0])

    def pixels(self, image: Image.Image) -> np.ndarray:
        """One image -> float32 [3, H, W], resized, cropped and normalised as the model expects."""
        if self._pil_steps is None:
            return self._transform(image).numpy().astype(np.float32, copy=False)
        for step in self._pil_steps:
            image = step(image)
        if not isinstance(image, Image.Image) or image.mode != "RGB":  # ToTensor + Normalize as they are
            return self._tensor_tail(image).numpy().astype(np.float32, copy=False)
        scaled = np.asarray(image, dtype=np.float32) / np.float32(255)
        return np.ascontiguousarray(((scaled - self._mean) / self._std).transpose(2, 0, 1))

    def tokens(self, texts: list[str]) -> np.ndarray:
        """Texts -> int64 [N, context_length] (truncated the way open_clip truncates)."""
        out = self.tokenizer(texts, context_length=self.context_length)
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.int64)

    def token_counts(self, tokens: np.ndarray) -> np.ndarray:
        """Non-padding tokens per row: what the ``usage`` field of an embeddings response sums."""
        return (tokens != 0).sum(axis=1)


def _numpy_tail(transform: Any) -> tuple[list[Any] | None, np.ndarray | None, np.ndarray | None]:
    """Split open_clip's eval transform into its PIL steps and a ToTensor + Normalize tail done in
    numpy: the same float32 operations (divide by 255, subtract the mean, divide by the std), so
    the same bits, at about a third of the cost per image (the tail was half of preprocessing
    under load). ``(None, None, None)`` for any other shape of transform: it then runs as it is.
    """
    from torchvision.transforms import Compose, Normalize, ToTensor

    steps = list(getattr(transform, "transforms", [])) if isinstance(transform, Compose) else []
    if len(steps) < 2 or not isinstance(steps[-1], Normalize):
        return None, None, None
    to_tensor = steps[-2]
    if not (isinstance(to_tensor, ToTensor) or type(to_tensor).__name__ == "MaybeToTensor"):
        return None, None, None
    mean = np.asarray(steps[-1].mean, dtype=np.float32).reshape(-1)
    std = np.asarray(steps[-1].std, dtype=np.float32).reshape(-1)
    if mean.size != 3 or std.size != 3:
        return None, None, None
    return steps[:-2], mean, std


def preprocess_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Complete a stored preprocess config with open_clip's defaults (size, mean, std, ...)."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), config)
    size = cfg["size"]
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        cfg["size"] = int(size[0])
    return dict(cfg)


def model_io_from_open_clip_folder(folder: Path) -> ModelIO:
    """Read ``open_clip_config.json`` only (no weights): what a non-torch runtime needs."""
    import open_clip

    from trainer.artifacts import OPEN_CLIP_CONFIG

    config = json.loads((folder / OPEN_CLIP_CONFIG).read_text())
    model_cfg = config["model_cfg"]
    return ModelIO(
        preprocess_cfg=preprocess_from_config(config.get("preprocess_cfg", {})),
        tokenizer=open_clip.get_tokenizer(f"local-dir:{folder}"),
        context_length=int(model_cfg.get("text_cfg", {}).get("context_length", 77)),
        embed_dim=int(model_cfg["embed_dim"]),
    )


def model_io_from_onnx_export(info: dict[str, Any]) -> ModelIO:
    """From an ONNX export's ``preprocess.json`` alone (a folder shipped without ``open_clip/``)."""
    import open_clip

    size = info["size"]
    cfg = {
        key: info[key] for key in ("mean", "std", "interpolation", "resize_mode", "fill_color") if key in info
    }
    cfg["size"] = size[0] if size[0] == size[1] else tuple(size)
    context_length = int(info.get("context_length", 77))
    name = info.get("tokenizer", "open_clip:SimpleTokenizer")
    if name.startswith("open_clip:"):
        tokenizer = open_clip.SimpleTokenizer(context_length=context_length)
    else:
        tokenizer = open_clip.HFTokenizer(name, context_length=context_length)
    return ModelIO(
        preprocess_cfg=preprocess_from_config(cfg),
        tokenizer=tokenizer,
        context_length=context_length,
        embed_dim=int(info["embed_dim"]),
    )
