"""Content-addressed dataset storage under ``settings.datasets_dir``.

    <datasets_dir>/blobs/<aa>/<sha256>.<ext>     each distinct image once, whoever uploaded it
    <datasets_dir>/<dataset id>/images/...       hard links to the blobs: the trainer's folder
    <datasets_dir>/<dataset id>/dataset.json     DatasetManifest

The dataset id is derived from the set of image hashes, so uploading the same images twice gives
the same dataset and no second copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "dataset.json"
DATASET_ID = re.compile(r"^ds-[0-9a-f]{20}$")


class DatasetNotFound(LookupError):
    """No dataset with this id (or the id is malformed)."""


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    reason: str


class StoredImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name as uploaded (archive member path for archives).")
    sha256: str
    file: str = Field(description="Path relative to the dataset folder.")
    width: int
    height: int


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    num_images: int
    images: list[StoredImage]
    rejected: list[Rejection] = Field(default_factory=list)


def dataset_id_for(hashes: list[str]) -> str:
    return "ds-" + hashlib.sha256("\n".join(sorted(set(hashes))).encode()).hexdigest()[:20]


class DatasetStore:
    """Reads and writes datasets under one root folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, dataset_id: str) -> Path:
        if not DATASET_ID.match(dataset_id):
            raise DatasetNotFound(f"invalid dataset id {dataset_id!r}: expected 'ds-' + 20 hex digits")
        return self.root / dataset_id

    def images_dir(self, dataset_id: str) -> Path:
        """The folder of images the trainer reads."""
        self.get(dataset_id)
        return self.folder(dataset_id) / "images"

    def get(self, dataset_id: str) -> DatasetManifest:
        path = self.folder(dataset_id) / MANIFEST
        if not path.is_file():
            raise DatasetNotFound(f"no dataset {dataset_id!r}; upload one with POST /v1/datasets")
        return DatasetManifest.model_validate_json(path.read_text())

    def list(self) -> list[DatasetManifest]:
        if not self.root.is_dir():
            return []
        return [
            DatasetManifest.model_validate_json((child / MANIFEST).read_text())
            for child in sorted(self.root.iterdir())
            if DATASET_ID.match(child.name) and (child / MANIFEST).is_file()
        ]

    def put_blob(self, data: bytes, ext: str) -> tuple[str, Path]:
        """Store ``data`` once under its sha256; return (hash, path)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / digest[:2] / f"{digest}{ext}"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest, path

    def commit(self, images: list[tuple[StoredImage, Path]], rejected: list[Rejection]) -> DatasetManifest:
        """Create (or find) the dataset made of these blobs; atomic, so readers never see half."""
        unique: dict[str, tuple[StoredImage, Path]] = {}
        for image, blob in images:
            unique.setdefault(image.sha256, (image, blob))
        dataset_id = dataset_id_for(list(unique))
        final = self.root / dataset_id
        if (final / MANIFEST).is_file():
            existing = self.get(dataset_id)
            return existing.model_copy(update={"rejected": rejected})
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        (staging / "images").mkdir(parents=True)
        try:
            entries = []
            for image, blob in unique.values():
                target = staging / image.file
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copyfile(blob, target)
                entries.append(image)
            manifest = DatasetManifest(
                id=dataset_id, num_images=len(entries), images=entries, rejected=rejected
            )
            (staging / MANIFEST).write_text(json.dumps(manifest.model_dump(mode="json"), indent=1) + "\n")
            try:
                staging.rename(final)
            except OSError:  # a concurrent identical upload won the race
                if not (final / MANIFEST).is_file():
                    raise
            return manifest
        finally:
            shutil.rmtree(staging, ignore_errors=True)
