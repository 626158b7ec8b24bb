"""decode_image: limits checked before the work they protect, each failure a clear reason."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from serving_helpers import png_bytes

from service.images import ImageDecodeError, ImageLimits, decode_base64_image, decode_image


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_decodes_allowed_formats_fully():
    image = Image.new("RGB", (20, 10), (10, 200, 30))
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        decoded = decode_image(encoded(image, fmt))
        assert decoded.size == (20, 10) and decoded.format in (fmt, None)


@pytest.mark.parametrize(
    ("data", "limits", "reason"),
    [
        (b"", ImageLimits(), "empty image data"),
        (png_bytes(1), ImageLimits(max_bytes=100), "bytes; the limit is 100"),
        (png_bytes(1), ImageLimits(max_pixels=100), "pixels; the limit is 100"),
        (png_bytes(1), ImageLimits(formats=("JPEG",)), "format PNG is not allowed"),
        (png_bytes(1)[:70], ImageLimits(), "truncated or corrupt PNG"),
        (b"%PDF-1.4 ...", ImageLimits(), "PDF"),
        (b"  <svg></svg>", ImageLimits(), "SVG"),
        (b"plain words", ImageLimits(), "not a recognised image"),
    ],
)
def test_refusals_name_the_reason(data, limits, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data, limits)


def test_exif_orientation_rotates_to_upright():
    stored = Image.new("RGB", (30, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    assert decode_image(encoded(stored, "JPEG", exif=exif)).size == (10, 30)


def test_base64_and_data_uris():
    data = png_bytes(2)
    text = base64.b64encode(data).decode()
    assert decode_base64_image(text, 1 << 20) == data
    assert decode_base64_image(f"data:image/png;base64,{text}", 1 << 20) == data
    for bad, reason in [
        ("", "empty"),
        ("abc$", "invalid base64"),
        ("data:text/plain;base64,aGk=", "not an image"),
        ("data:image/png,abc", "malformed data URI"),
        (text, "larger than 10 bytes"),
    ]:
        with pytest.raises(ImageDecodeError, match=reason):
            decode_base64_image(bad, 10 if "larger" in reason else 1 << 20)
