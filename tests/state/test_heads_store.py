"""state.heads: heads persist in folders, scoped to their owner like datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from state.heads import HeadNotFound, HeadStore
from state.owners import Viewer
from trainer.heads import Head, fit_head

ALICE, BOB = Viewer(owner="alice"), Viewer(owner="bob")


def small_head() -> Head:
    features = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    return fit_head(features, ["a", "a", "b", "b"], text_weight=0.0, model="m")


def test_a_stored_head_is_found_by_a_new_store_on_the_same_folder(tmp_path: Path) -> None:
    record = HeadStore(tmp_path).put(small_head(), name="n", model="m", owner="alice")
    again = HeadStore(tmp_path)
    assert again.get(record.id, ALICE) == record
    _, head = again.load(record.id, ALICE)
    assert head.labels == ["a", "b"] and record.shots == {"a": 2, "b": 2} and record.cv_folds == 2
    assert [r.id for r in again.list(ALICE)] == [record.id]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_another_owners_head_is_not_found(tmp_path: Path) -> None:
    store = HeadStore(tmp_path)
    record = store.put(small_head(), name="n", model="m", owner="alice")
    with pytest.raises(HeadNotFound):
        store.get(record.id, BOB)
    with pytest.raises(HeadNotFound):
        store.delete(record.id, BOB)
    assert store.list(BOB) == []
    assert store.get(record.id, Viewer(owner="bob", sees_all=True)).owner == "alice"  # an admin


def test_list_filters_by_model_and_delete_removes_the_folder(tmp_path: Path) -> None:
    store = HeadStore(tmp_path)
    first = store.put(small_head(), name="one", model="m", owner=None)
    second = store.put(small_head(), name="two", model="other", owner=None)
    assert [r.id for r in store.list(model="other")] == [second.id]
    store.delete(first.id)
    assert not store.folder(first.id).exists()
    assert [r.id for r in store.list()] == [second.id]
    with pytest.raises(HeadNotFound):
        store.get(first.id)


@pytest.mark.parametrize("bad", ["../etc", "head-xyz", "ds-00000000000000000000", ""])
def test_malformed_ids_are_not_found(tmp_path: Path, bad: str) -> None:
    with pytest.raises(HeadNotFound):
        HeadStore(tmp_path).get(bad)
