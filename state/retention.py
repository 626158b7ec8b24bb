"""Retention: what may be deleted by age, planned first (a dry run) and applied on request.

Three kinds of state grow without bound: uploaded datasets, trained models and job folders
(checkpoints kept for resume, models the gate held back). A :class:`RetentionPolicy` gives a
maximum age per kind (``None`` keeps that kind forever); :func:`plan` lists what it would delete,
with sizes and reasons, touching nothing; :func:`apply` deletes exactly a plan's items. Anything
a queued or running job still needs (its dataset, its base model, its own folder) is never
planned. Built-in models are never candidates. Checkpoints *within* a job are bounded as it
trains (``DIVA_JOB_KEEP_CHECKPOINTS``), not here.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from state import catalog
from state.datasets import DatasetStore
from state.jobs import JobStore
from state.settings import Settings

Kind = Literal["dataset", "model", "job"]


@dataclass(frozen=True)
class RetentionPolicy:
    """Maximum age in days per kind; ``None`` keeps that kind forever."""

    datasets_days: float | None = None
    models_days: float | None = None
    jobs_days: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            settings.retention_dataset_days, settings.retention_model_days, settings.retention_job_days
        )

    @property
    def empty(self) -> bool:
        return self.datasets_days is None and self.models_days is None and self.jobs_days is None


@dataclass(frozen=True)
class Candidate:
    kind: Kind
    id: str
    path: str
    bytes: int
    age_days: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def plan(settings: Settings, policy: RetentionPolicy, now: datetime | None = None) -> list[Candidate]:
    """What ``policy`` would delete now; reads only."""
    now = now or datetime.now(timezone.utc)
    store = JobStore(settings.resolved_database_url)
    active = store.active()
    busy_datasets = {job.dataset for job in active}
    busy_models = {job.base_model for job in active}
    found: list[Candidate] = []
    if policy.datasets_days is not None:
        datasets = DatasetStore(settings.datasets_dir)
        for manifest in datasets.list():
            age = _age_days(manifest.created, now)
            if age > policy.datasets_days and manifest.id not in busy_datasets:
                found.append(_candidate("dataset", manifest.id, datasets.folder(manifest.id), age))
    if policy.models_days is not None:
        for model_id, artifact in sorted(catalog.artifacts(settings).items()):
            if catalog.is_builtin(artifact) or model_id in busy_models:
                continue
            try:
                age = _age_days(artifact.read_manifest().created, now)
            except (OSError, ValueError):
                continue  # a folder with a broken manifest is the operator's to look at
            if age > policy.models_days:
                found.append(_candidate("model", model_id, artifact.root, age))
    if policy.jobs_days is not None:
        cutoff = now - timedelta(days=policy.jobs_days)
        for job in store.finished_before(cutoff):
            folder = settings.job_dir(job.id)
            if folder.is_dir() and job.finished_at is not None:
                age = (now - job.finished_at).total_seconds() / 86400
                found.append(_candidate("job", job.id, folder, age))
    return found


def apply(settings: Settings, candidates: list[Candidate]) -> list[Candidate]:
    """Delete the planned items (each through its store); returns those actually removed."""
    datasets = DatasetStore(settings.datasets_dir)
    removed = []
    for item in candidates:
        try:
            if item.kind == "dataset":
                datasets.delete(item.id)
            elif item.kind == "model":
                catalog.delete_model(item.id, settings)
            else:
                shutil.rmtree(settings.job_dir(item.id))
        except (LookupError, FileNotFoundError):
            continue  # gone since the plan was made
        removed.append(item)
    return removed


def _age_days(created: str, now: datetime) -> float:
    stamp = datetime.fromisoformat(created)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return (now - stamp).total_seconds() / 86400


def _candidate(kind: Kind, item_id: str, folder: Path, age: float) -> Candidate:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return Candidate(kind, item_id, str(folder), size, round(age, 3))
