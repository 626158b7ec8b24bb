"""The dataset store's owners: ids per owner, reads scoped by viewer, deletes that free blobs."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.datasets import DatasetLimits, Upload, ingest
from state.datasets import DatasetNotFound, DatasetStore
from state.owners import SYSTEM, Viewer, owner_of

ALICE, BOB = owner_of("alice"), owner_of("bob")


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def upload(store: DatasetStore, seeds: list[int], owner: str | None):
    uploads = [Upload(f"{s}.png", io.BytesIO(png(s))) for s in seeds]
    return ingest(uploads, store, DatasetLimits(), owner=owner)


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def test_same_images_two_owners_two_datasets_one_copy_of_each_blob(store: DatasetStore) -> None:
    a, b = upload(store, [1, 2], ALICE), upload(store, [1, 2], BOB)
    assert a.id != b.id and upload(store, [2, 1], ALICE).id == a.id
    assert len(list((store.root / "blobs").glob("*/*"))) == 2
    assert [m.id for m in store.list(Viewer(ALICE))] == [a.id]
    assert {m.id for m in store.list(SYSTEM)} == {a.id, b.id}
    with pytest.raises(DatasetNotFound):
        store.get(a.id, Viewer(BOB))
    with pytest.raises(DatasetNotFound):
        store.images_dir(a.id, Viewer(BOB))
    with pytest.raises(DatasetNotFound):
        store.delete(a.id, Viewer(BOB))
    assert store.get(a.id, Viewer(ALICE)).owner == ALICE


def test_without_owner_ids_are_what_they_were(store: DatasetStore) -> None:
    from state.datasets import dataset_id_for

    manifest = upload(store, [5], None)
    assert manifest.owner is None
    assert manifest.id == dataset_id_for([manifest.images[0].sha256])
    assert manifest.id != dataset_id_for([manifest.images[0].sha256], ALICE)


def test_delete_frees_only_blobs_no_other_dataset_uses(store: DatasetStore) -> None:
    kept, gone = upload(store, [1, 2], ALICE), upload(store, [2, 3], ALICE)
    blobs = store.root / "blobs"
    old = time.time() - 7200  # past the grace period an in-flight upload is given
    for path in blobs.glob("*/*"):
        os.utime(path, (old, old))
    store.delete(gone.id, Viewer(ALICE))
    with pytest.raises(DatasetNotFound):
        store.get(gone.id)
    left = {path.stem for path in blobs.glob("*/*")}
    assert left == {image.sha256 for image in kept.images}
    assert (store.folder(kept.id) / "images").is_dir()


def test_fresh_orphans_are_spared_for_uploads_in_flight(store: DatasetStore) -> None:
    digest, path = store.put_blob(png(9), ".png")  # stored, not yet committed into a dataset
    assert store.orphan_blobs(delete=True) == [] and path.is_file()
    assert store.orphan_blobs(grace_s=0) == [path]
    assert digest == path.stem
