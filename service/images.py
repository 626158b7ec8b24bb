"""Turn untrusted bytes into a PIL image, or a clear reason why not.

Every limit is checked before the expensive step it protects: byte size before parsing, the
header's pixel count before decoding (decompression bombs), the format against an allow-list
before any decoder runs. EXIF orientation is applied so a phone photo is encoded upright.
Dataset ingest reuses :func:`decode_image`; the HTTP layer adds the input's index to the reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,"
)
_SNIFF = (
    (b"%PDF", "PDF documents are not images"),
    (b"<svg", "SVG is not accepted (vector images are not decoded)"),
    (b"<?xml", "XML/SVG is not accepted (vector images are not decoded)"),
)


class ImageDecodeError(ValueError):
    """The bytes are not an acceptable image; ``reason`` says why in words a client can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """What an input image may be. Defaults match the service settings' defaults."""

    max_bytes: int = 16 << 20
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = field(default=DEFAULT_FORMATS)

    @classmethod
    def from_settings(cls, settings: object) -> ImageLimits:
        return cls(
            max_bytes=settings.max_image_bytes,  # type: ignore[attr-defined]
            max_pixels=settings.max_image_pixels,  # type: ignore[attr-defined]
            formats=tuple(f.upper() for f in settings.image_formats),  # type: ignore[attr-defined]
        )


def decode_image(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Decode ``data`` fully (so truncation shows up here) and apply EXIF orientation."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageDecodeError("empty image data")
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    head = data[:256].lstrip().lower()
    for magic, reason in _SNIFF:
        if head.startswith(magic.lower()):
            raise ImageDecodeError(reason)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"not a recognised image; allowed formats: {', '.join(limits.formats)}"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(f"image has more than {limits.max_pixels} pixels") from None
    except Exception as exc:  # a corrupt header can raise anything from a plugin
        raise ImageDecodeError(f"unreadable image header ({type(exc).__name__})") from None
    if image.format not in limits.formats:
        raise ImageDecodeError(
            f"image format {image.format} is not allowed; allowed: {', '.join(limits.formats)}"
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    try:
        image.load()
        # in place: the default returns a copy of every image, rotated or not (a tenth of decoding)
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as exc:
        raise ImageDecodeError(f"truncated or corrupt {image.format} image ({exc})") from None
    return image


def decode_base64_image(text: str, max_bytes: int) -> bytes:
    """Bytes of a base64 string or ``data:image/...;base64,`` URI; strict, size-checked first."""
    if not isinstance(text, str) or not text.strip():
        raise ImageDecodeError("empty image string")
    text = text.strip()
    if text.startswith("data:"):
        match = _DATA_URI.match(text)
        if not match or not match.group("b64"):
            raise ImageDecodeError("malformed data URI: expected 'data:image/<type>;base64,<data>'")
        mime = match.group("mime") or ""
        if mime and not mime.startswith("image/"):
            raise ImageDecodeError(f"data URI media type {mime!r} is not an image")
        text = text[match.end() :]
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise ImageDecodeError(f"image is larger than {max_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError("invalid base64 image data") from None
