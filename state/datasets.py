"""Content-addressed, owner-scoped dataset storage under ``settings.datasets_dir``.

    <datasets_dir>/blobs/<aa>/<sha256>.<ext>     each distinct image once, whoever uploaded it
    <datasets_dir>/<dataset id>/images/...       hard links to the blobs: the trainer's folder
    <datasets_dir>/<dataset id>/dataset.json     DatasetManifest (with its owner)

The dataset id is derived from the owner and the set of image hashes: one owner uploading the
same images twice gets the same dataset and no second copy, while two owners uploading the same
images get two datasets (sharing blobs on disk), so an id never tells one tenant that another
holds those images. Reads go through :class:`state.owners.Viewer`: another owner's dataset is
"not found".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from state.owners import SYSTEM, Viewer

MANIFEST = "dataset.json"
DATASET_ID = re.compile(r"^ds-[0-9a-f]{20}$")
BLOB_GRACE_S = 3600.0


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
    owner: str | None = Field(None, description="sha256 of the uploading API key; None without auth.")
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    num_images: int
    images: list[StoredImage]
    rejected: list[Rejection] = Field(default_factory=list)


def dataset_id_for(hashes: list[str], owner: str | None = None) -> str:
    body = "\n".join(sorted(set(hashes)))
    if owner:  # without an owner, the id stays what it was before datasets had owners
        body = f"owner:{owner}\n{body}"
    return "ds-" + hashlib.sha256(body.encode()).hexdigest()[:20]


class DatasetStore:
    """Reads and writes datasets under one root folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, dataset_id: str) -> Path:
        if not DATASET_ID.match(dataset_id):
            raise DatasetNotFound(f"invalid dataset id {dataset_id!r}: expected 'ds-' + 20 hex digits")
        return self.root / dataset_id

    def images_dir(self, dataset_id: str, viewer: Viewer = SYSTEM) -> Path:
        """The folder of images the trainer reads."""
        self.get(dataset_id, viewer)
        return self.folder(dataset_id) / "images"

    def get(self, dataset_id: str, viewer: Viewer = SYSTEM) -> DatasetManifest:
        """The manifest, or :class:`DatasetNotFound` when absent *or* not ``viewer``'s to see."""
        path = self.folder(dataset_id) / MANIFEST
        manifest = DatasetManifest.model_validate_json(path.read_text()) if path.is_file() else None
        if manifest is None or not viewer.can_see(manifest.owner):
            raise DatasetNotFound(f"no dataset {dataset_id!r}; upload one with POST /v1/datasets")
        return manifest

    def list(self, viewer: Viewer = SYSTEM) -> list[DatasetManifest]:
        if not self.root.is_dir():
            return []
        manifests = [
            DatasetManifest.model_validate_json((child / MANIFEST).read_text())
            for child in sorted(self.root.iterdir())
            if DATASET_ID.match(child.name) and (child / MANIFEST).is_file()
        ]
        return [m for m in manifests if viewer.can_see(m.owner)]

    def delete(self, dataset_id: str, viewer: Viewer = SYSTEM) -> DatasetManifest:
        """Remove the dataset (renamed away first, so readers never see half), then its orphan blobs.

        Jobs that already ran keep their trained models; a queued job on it fails with the reason.
        """
        manifest = self.get(dataset_id, viewer)
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        self.folder(dataset_id).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        self.orphan_blobs(delete=True)
        return manifest

    def orphan_blobs(self, *, delete: bool = False, grace_s: float = BLOB_GRACE_S) -> list[Path]:
        """Blobs no dataset refers to (left by deletes, or by a crash mid-upload).

        A blob touched in the last ``grace_s`` seconds is spared: an upload stores its blobs
        before it commits the dataset that links them, and must not lose them in between.
        """
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return []
        used = {image.sha256 for manifest in self.list() for image in manifest.images}
        cutoff = time.time() - grace_s
        orphans = [
            path
            for path in sorted(blobs.glob("*/*"))
            if path.stem not in used and path.stat().st_mtime < cutoff
        ]
        if delete:
            for path in orphans:
                path.unlink(missing_ok=True)
        return orphans

    def put_blob(self, data: bytes, ext: str) -> tuple[str, Path]:
        """Store ``data`` once under its sha256; return (hash, path)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / digest[:2] / f"{digest}{ext}"
        if path.is_file():
            os.utime(path)  # fresh again: orphan collection spares it until this upload commits
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return digest, path

    def commit(
        self, images: list[tuple[StoredImage, Path]], rejected: list[Rejection], owner: str | None = None
    ) -> DatasetManifest:
        """Create (or find) ``owner``'s dataset made of these blobs; atomic, so readers never see half."""
        unique: dict[str, tuple[StoredImage, Path]] = {}
        for image, blob in images:
            unique.setdefault(image.sha256, (image, blob))
        dataset_id = dataset_id_for(list(unique), owner)
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
                id=dataset_id, owner=owner, num_images=len(entries), images=entries, rejected=rejected
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
