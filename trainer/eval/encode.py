"""Batched, normalised image and text features of a CLIP, plus its own logit scale and bias.

Every evaluator goes through :class:`FeatureEncoder`, so each image and each text is encoded
exactly once per evaluation (one forward per item, in batches) and the scoring code only sees
matrices. The encoder reads nothing but ``model.encode_image`` / ``model.encode_text`` and the
optional ``logit_scale`` / ``logit_bias`` attributes, so any open_clip model works, and so does a
hand-written ``nn.Module`` with the same two methods (the tests use one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after every batch; counts items (images + texts)."""


def running_total(progress: Progress | None, total: int) -> Callable[[int], None]:
    """A per-batch ``advance(count)`` that reports ``progress(done so far, total)`` (if given)."""
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    return advance


OFFICIAL_MMVP_SCALE = 100.0
"""The scale the MMVP-VLM script uses when a model has no ``logit_scale`` of its own."""


class ImageReadError(ValueError):
    """An image file that is missing or that Pillow cannot decode; the message names the file."""


def read_rgb(path: Path | str) -> Image.Image:
    """Open an image fully (so truncated files fail here, not inside a batch) as RGB."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ...)
        raise ImageReadError(f"unreadable image {path}: {error}") from error


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


class FeatureEncoder:
    """Wraps a :class:`~trainer.backbones.ClipBundle` (or anything with ``model``,
    ``preprocess`` and ``tokenizer``) for evaluation: no grad, fp32 features, one device.

    The model is moved to ``device`` and put in eval mode (and left so: a training loop that
    evaluates mid-run calls ``model.train()`` again itself).

    ``image_feature_fn`` replaces the pooled embedding (the non-standard DIVA protocol uses it);
    it receives the preprocessed batch and returns un-normalised features.
    """

    def __init__(
        self,
        bundle: Any,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        image_feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.bundle = bundle
        self.model = bundle.model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._image_feature_fn = image_feature_fn or self.model.encode_image

    # -- features ---------------------------------------------------------------------------
    @torch.no_grad()
    def images(
        self,
        images: Sequence[Image.Image | Path | str],
        *,
        loader: Callable[[Any], Image.Image] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """L2-normalised features ``(N, D)`` of PIL images or image paths, in input order.

        ``loader`` turns one item into a PIL image (default: PIL passes through, paths are read
        with :func:`read_rgb`); callers use it to attach their own context to read errors.
        """
        load = loader or _default_loader
        out: list[torch.Tensor] = []
        for chunk in batches(images, self.batch_size):
            pixels = torch.stack([self.bundle.preprocess(load(item)) for item in chunk]).to(self.device)
            out.append(F.normalize(self._image_feature_fn(pixels).float(), dim=-1).cpu())
            if progress:
                progress(len(chunk))
        return torch.cat(out) if out else torch.empty(0, 0)

    @torch.no_grad()
    def pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of an already preprocessed batch (e.g. from a DataLoader)."""
        return F.normalize(self._image_feature_fn(pixels.to(self.device)).float(), dim=-1).cpu()

    @torch.no_grad()
    def texts(self, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """L2-normalised features ``(N, D)`` of strings, tokenised by the bundle's tokenizer."""
        out: list[torch.Tensor] = []
        for chunk in batches(list(texts), self.batch_size):
            tokens = self.bundle.tokenizer(list(chunk)).to(self.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
            if progress:
                progress(len(chunk))
        return torch.cat(out) if out else torch.empty(0, 0)

    # -- logits -----------------------------------------------------------------------------
    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        if scale is None:
            return OFFICIAL_MMVP_SCALE
        return float(math.exp(float(torch.as_tensor(scale).detach().float().reshape(-1)[0])))

    @property
    def logit_bias(self) -> float | None:
        """SigLIP's learned bias; ``None`` for softmax-trained CLIPs."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(torch.as_tensor(bias).detach().float().reshape(-1)[0])

    @property
    def sigmoid(self) -> bool:
        """True when the model was trained with a sigmoid loss (it carries a logit bias)."""
        return self.logit_bias is not None

    def logits(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """``(images, texts)`` logits exactly as the model's own forward computes them."""
        return self.scale(image_features @ text_features.T)

    def scale(self, cosine: torch.Tensor) -> torch.Tensor:
        """Cosine similarities -> logits with the model's scale (and SigLIP bias)."""
        logits = self.logit_scale * cosine
        bias = self.logit_bias
        return logits + bias if bias is not None else logits


def _default_loader(item: Any) -> Image.Image:
    return item.convert("RGB") if isinstance(item, Image.Image) else read_rgb(item)
