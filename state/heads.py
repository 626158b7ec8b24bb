"""Owner-scoped storage of fitted few-shot heads under ``settings.heads_dir``.

    <heads_dir>/<head id>/record.json          HeadRecord: who owns it, which model, its scores
    <heads_dir>/<head id>/head.json, tensors.safetensors   the head itself (trainer.heads)

A head is written to a staging folder and renamed into place, so a crash never leaves half a
head and a restart finds every committed one. Reads take a :class:`state.owners.Viewer`: another
owner's head is "not found", exactly like an id that does not exist.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from state.owners import SYSTEM, Viewer
from trainer.heads import Head

RECORD = "record.json"
HEAD_ID = re.compile(r"^head-[0-9a-f]{16}$")


class HeadNotFound(LookupError):
    """No head with this id (or the id is malformed, or it is another owner's)."""


class HeadRecord(BaseModel):
    """What the API shows about a head; the tensors stay in the folder."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    model: str
    kind: str
    owner: str | None = Field(None, description="sha256 of the fitting API key; None without auth.")
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    labels: list[str]
    shots: dict[str, int]
    alpha: float
    param: float
    param_name: str
    text_weight: float
    cv_accuracy: float | None
    cv_folds: int
    dataset: str | None = None


class HeadStore:
    """Reads and writes heads under one root folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def folder(self, head_id: str) -> Path:
        if not HEAD_ID.match(head_id):
            raise HeadNotFound(f"no head {head_id!r}: expected 'head-' + 16 hex digits")
        return self.root / head_id

    def put(
        self, head: Head, *, name: str, model: str, owner: str | None, dataset: str | None = None
    ) -> HeadRecord:
        """Store ``head`` for ``model`` under a fresh id; atomic (staging folder, then rename)."""
        config = head.config
        record = HeadRecord(
            id=f"head-{uuid.uuid4().hex[:16]}",
            name=name,
            model=model,
            kind=config.kind,
            owner=owner,
            labels=config.labels,
            shots=config.shots,
            alpha=config.alpha,
            param=config.param,
            param_name=config.param_name,
            text_weight=config.text_weight,
            cv_accuracy=config.cv_accuracy,
            cv_folds=config.cv_folds,
            dataset=dataset,
        )
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        try:
            head.save_pretrained(staging)
            (staging / RECORD).write_text(record.model_dump_json(indent=1) + "\n")
            staging.rename(self.folder(record.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return record

    def get(self, head_id: str, viewer: Viewer = SYSTEM) -> HeadRecord:
        path = self.folder(head_id) / RECORD
        record = HeadRecord.model_validate_json(path.read_text()) if path.is_file() else None
        if record is None or not viewer.can_see(record.owner):
            raise HeadNotFound(f"no head {head_id!r}; fit one with POST /v1/heads")
        return record

    def load(self, head_id: str, viewer: Viewer = SYSTEM) -> tuple[HeadRecord, Head]:
        record = self.get(head_id, viewer)
        return record, Head.from_pretrained(self.folder(head_id))

    def list(self, viewer: Viewer = SYSTEM, model: str | None = None) -> list[HeadRecord]:
        """``viewer``'s heads (every head for an admin or an open service), oldest first."""
        if not self.root.is_dir():
            return []
        records = [
            HeadRecord.model_validate_json((child / RECORD).read_text())
            for child in self.root.iterdir()
            if HEAD_ID.match(child.name) and (child / RECORD).is_file()
        ]
        records = [r for r in records if viewer.can_see(r.owner) and model in (None, r.model)]
        return sorted(records, key=lambda r: (r.created, r.id))

    def delete(self, head_id: str, viewer: Viewer = SYSTEM) -> HeadRecord:
        """Remove the head (renamed away first, so a reader never loads half of one)."""
        record = self.get(head_id, viewer)
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        self.folder(head_id).rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return record
