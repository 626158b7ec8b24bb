"""Throughput decoding: JPEG bytes -> model-ready tensors with torchvision (nvJPEG on a GPU).

The default decoder (PIL + the model's own transform) is bit-exact with open_clip but costs CPU
per image; a GPU serving hundreds of images a second needs the decode on the GPU too. With
``DIVA_IMAGE_DECODER=torchvision`` JPEGs are decoded in batches by ``torchvision.io.decode_jpeg``
on the model's device, resized (bicubic, antialiased, shortest side), centre-cropped and
normalised there, so only compressed bytes cross PCIe. Results match the PIL path closely (same
operations, different resampling code) but not bit for bit. Anything else (PNG, WEBP, EXIF
rotation, CMYK, non-default resize modes) goes through the exact PIL path. Limits are checked
on the header first, exactly as for PIL decoding.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from contextlib import nullcontext

import torch
from PIL import Image

from service.images import ImageDecodeError, ImageLimits, decode_image
from service.inference.preprocessing import ModelIO

_streams = threading.local()


class TensorImageDecoder:
    """Decode and preprocess a list of encoded images into tensors on ``device``."""

    def __init__(self, io_: ModelIO, device: torch.device | str, limits: ImageLimits) -> None:
        self.io = io_
        self.device = torch.device(device)
        self.limits = limits
        cfg = io_.preprocess_cfg
        self.size = io_.image_size
        self.usable = cfg.get("resize_mode", "shortest") == "shortest" and isinstance(cfg["size"], int)
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(3, 1, 1)

    def _is_plain_jpeg(self, data: bytes) -> bool:
        """Header-only look (limits enforced here): a JPEG that needs no rotation or CMYK care."""
        if not data:
            raise ImageDecodeError("empty image data")
        if len(data) > self.limits.max_bytes:
            raise ImageDecodeError(f"image is {len(data)} bytes; the limit is {self.limits.max_bytes}")
        if not data.startswith(b"\xff\xd8") or "JPEG" not in self.limits.formats:
            return False
        try:
            header = Image.open(io.BytesIO(data))
            width, height = header.size
            orientation = header.getexif().get(0x0112, 1)
        except Exception:
            return False  # let the PIL path produce the precise error
        if width * height > self.limits.max_pixels:
            raise ImageDecodeError(
                f"image is {width}x{height} = {width * height} pixels; the limit is {self.limits.max_pixels}"
            )
        return header.mode in ("RGB", "L") and orientation in (None, 1)

    def _preprocess(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        x = F.resize(image.float(), [self.size], interpolation=F.InterpolationMode.BICUBIC, antialias=True)
        x = F.center_crop(x.clamp_(0, 255).round_(), [self.size, self.size])
        return (x / 255 - self.mean) / self.std

    def _preprocess_by_size(self, decoded: dict[int, torch.Tensor], out: list[torch.Tensor | None]) -> None:
        """Same-sized images are resized as one batch: a few kernel launches per request instead
        of a few per image (per-image Python calls held the GIL the server needs for HTTP)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in decoded.items():
            groups.setdefault(tuple(image.shape[-2:]), []).append(index)
        for indices in groups.values():
            batch = self._preprocess(torch.stack([decoded[i] for i in indices]))
            for i, row in zip(indices, batch.unbind(0)):
                out[i] = row

    def _pil(self, data: bytes) -> torch.Tensor:
        return torch.from_numpy(self.io.pixels(decode_image(data, self.limits))).to(self.device)

    def __call__(self, blobs: list[bytes], on_error: Callable[[int, str], Exception]) -> list[torch.Tensor]:
        """Tensors [3, S, S] on the device, in order; ``on_error(i, reason)`` builds the raised error."""
        from torchvision.io import ImageReadMode, decode_jpeg

        out: list[torch.Tensor | None] = [None] * len(blobs)
        jpeg_idx: list[int] = []
        for i, data in enumerate(blobs):
            try:
                if self.usable and self._is_plain_jpeg(data):
                    jpeg_idx.append(i)
                else:
                    out[i] = self._pil(data)
            except ImageDecodeError as exc:
                raise on_error(i, exc.reason) from None
        stream = self._stream()
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            if jpeg_idx:
                raw = [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in jpeg_idx]
                try:
                    decoded = decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device)
                except RuntimeError:  # one bad JPEG fails the batch: find it (or decode with PIL)
                    for r, i in zip(raw, jpeg_idx):
                        out[i] = self._decode_one(r, blobs[i], i, on_error)
                else:
                    self._preprocess_by_size(dict(zip(jpeg_idx, decoded)), out)
            if stream is not None:
                default = torch.cuda.default_stream(self.device)
                for tensor in out:
                    tensor.record_stream(default)  # type: ignore[union-attr]
                stream.synchronize()
        return out  # type: ignore[return-value]

    def _decode_one(
        self, raw: torch.Tensor, data: bytes, index: int, on_error: Callable[[int, str], Exception]
    ) -> torch.Tensor:
        """One JPEG alone; if torchvision refuses it, PIL decides (and words the error)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return self._preprocess(decode_jpeg(raw, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:
            try:
                return self._pil(data)
            except ImageDecodeError as exc:
                raise on_error(index, exc.reason) from None

    def _stream(self) -> torch.cuda.Stream | None:
        """One CUDA stream per decode thread, so decoding overlaps the forward pass."""
        if self.device.type != "cuda":
            return None
        stream = getattr(_streams, "stream", None)
        if stream is None:
            stream = _streams.stream = torch.cuda.Stream(self.device)
        return stream


def stack_tensors(items: list[torch.Tensor]) -> torch.Tensor:
    """The batcher's ``stack`` for tensor items."""
    return torch.stack(list(items))
