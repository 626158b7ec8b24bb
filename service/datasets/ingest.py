"""Turn uploaded files (images, or zip/tar archives of images) into a stored dataset.

Every file is decoded and verified by the service's :func:`service.images.decode_image` (format
allow-list, pixel bombs, truncation, EXIF orientation). Files that fail are listed with their
reason; an unsafe archive, an upload over the limits, or no valid image at all refuses the
whole upload with :class:`DatasetRejected`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from service.datasets.archives import UnsafeArchive, iter_archive, looks_like_archive
from service.images import ImageDecodeError, ImageLimits, decode_image
from state.datasets import DatasetManifest, DatasetStore, Rejection, StoredImage

KEEP_AS_IS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
EXIF_ORIENTATION = 0x0112


class DatasetRejected(ValueError):
    """The upload as a whole is refused. ``status`` is the HTTP status the API should use."""

    def __init__(self, status: int, reason: str, rejected: list[Rejection] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.rejected = rejected or []


@dataclass(frozen=True)
class DatasetLimits:
    max_files: int = 10_000
    max_bytes: int = 2 << 30
    max_file_bytes: int = 64 << 20
    image: ImageLimits = field(default_factory=ImageLimits)

    @classmethod
    def from_settings(cls, settings: object) -> DatasetLimits:
        image = ImageLimits.from_settings(settings)
        return cls(
            max_files=settings.dataset_max_files,  # type: ignore[attr-defined]
            max_bytes=settings.dataset_max_bytes,  # type: ignore[attr-defined]
            max_file_bytes=settings.dataset_max_file_bytes,  # type: ignore[attr-defined]
            image=ImageLimits(
                max_bytes=min(image.max_bytes, settings.dataset_max_file_bytes),  # type: ignore[attr-defined]
                max_pixels=image.max_pixels,
                formats=image.formats,
            ),
        )


@dataclass(frozen=True)
class Upload:
    name: str
    fileobj: BinaryIO


def ingest(
    uploads: list[Upload], store: DatasetStore, limits: DatasetLimits, owner: str | None = None
) -> DatasetManifest:
    """Verify and store the uploads; return the dataset (with the per-file rejections)."""
    if not uploads:
        raise DatasetRejected(422, "no files uploaded: send images or one zip/tar in the 'files' field")
    accepted: list[tuple[StoredImage, Path]] = []
    rejected: list[Rejection] = []
    budget = _Budget(limits)
    for upload in uploads:
        head = upload.fileobj.read(512)
        upload.fileobj.seek(0)
        if looks_like_archive(head):
            # read straight from the (disk-spooled) upload: a 2 GB zip never sits in memory
            budget.spend(upload.name, _size_of(upload.fileobj))
            try:
                members = iter_archive(
                    upload.fileobj,
                    max_members=limits.max_files,
                    max_member_bytes=limits.max_file_bytes,
                    max_total_bytes=limits.max_bytes,
                )
                for member in members:
                    budget.count(f"{upload.name}:{member.name}")
                    _add(f"{upload.name}:{member.name}", member.data, store, limits, accepted, rejected)
            except UnsafeArchive as exc:
                raise DatasetRejected(422, f"archive {upload.name!r} refused: {exc.reason}") from None
        else:
            data = _read_limited(upload, min(limits.max_bytes, limits.max_file_bytes))
            budget.spend(upload.name, len(data))
            budget.count(upload.name)
            _add(upload.name, data, store, limits, accepted, rejected)
    if not accepted:
        raise DatasetRejected(422, "no valid images in the upload", rejected)
    return store.commit(accepted, rejected, owner)


class _Budget:
    def __init__(self, limits: DatasetLimits) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0

    def spend(self, name: str, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise DatasetRejected(413, f"upload exceeds {self.limits.max_bytes} bytes at {name!r}")

    def count(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise DatasetRejected(413, f"more than {self.limits.max_files} files (at {name!r})")


def _size_of(fileobj: BinaryIO) -> int:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


def _read_limited(upload: Upload, limit: int) -> bytes:
    data = upload.fileobj.read(limit + 1)
    if len(data) > limit:
        raise DatasetRejected(413, f"file {upload.name!r} is larger than {limit} bytes")
    return data


def _add(
    name: str,
    data: bytes,
    store: DatasetStore,
    limits: DatasetLimits,
    accepted: list[tuple[StoredImage, Path]],
    rejected: list[Rejection],
) -> None:
    if looks_like_archive(data):
        rejected.append(Rejection(name=name, reason="nested archives are not expanded"))
        return
    try:
        image = decode_image(data, limits.image)
    except ImageDecodeError as exc:
        rejected.append(Rejection(name=name, reason=exc.reason))
        return
    stored, ext = _normalised(data, image)
    digest, blob = store.put_blob(stored, ext)
    width, height = image.size
    entry = StoredImage(name=name, sha256=digest, file=f"images/{digest}{ext}", width=width, height=height)
    accepted.append((entry, blob))


def _normalised(data: bytes, image: Image.Image) -> tuple[bytes, str]:
    """Keep the original bytes when any reader sees the same pixels; else re-encode as PNG.

    A rotated phone photo (EXIF orientation) or a GIF/BMP/TIFF is stored as the upright PNG that
    ``decode_image`` produced, so the trainer needs no special cases.
    """
    original = Image.open(io.BytesIO(data))
    ext = KEEP_AS_IS.get(original.format or "")
    if ext and original.getexif().get(EXIF_ORIENTATION, 1) == 1:
        return data, ext
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), ".png"
