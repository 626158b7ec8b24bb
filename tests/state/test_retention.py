"""Retention: a dry-run plan by age, applied through the stores; what active jobs use is spared."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.datasets import DatasetLimits, Upload, ingest
from state import retention
from state.datasets import DatasetStore
from state.jobs import JobStatus, JobStore
from state.jobs.db import dispose_engines
from state.settings import Settings
from trainer.artifacts import ModelArtifact, ModelManifest

try:
    from tests.e2e.support import png_bytes
except ImportError:
    from e2e.support import png_bytes

NOW = datetime(2026, 12, 4, tzinfo=timezone.utc)


def _age(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def _dataset(settings: Settings, seed: int, days: float) -> str:
    store = DatasetStore(settings.datasets_dir)
    manifest = ingest([Upload("a.png", io.BytesIO(png_bytes(seed)))], store, DatasetLimits())
    path = store.folder(manifest.id) / "dataset.json"
    data = json.loads(path.read_text())
    data["created"] = _age(days)
    path.write_text(json.dumps(data))
    return manifest.id


def _model(settings: Settings, model_id: str, days: float) -> Path:
    artifact = ModelArtifact.in_registry(settings.models_dir, model_id)
    artifact.root.mkdir(parents=True)
    manifest = ModelManifest(
        id=model_id, architecture="x", embed_dim=4, image_size=8, mean=(0, 0, 0), std=(1, 1, 1),
        created=_age(days),
    )  # fmt: skip
    artifact.write_manifest(manifest, checksum=False)
    return artifact.root


@pytest.fixture
def settings(tmp_path: Path):
    yield Settings(home=tmp_path / "home")
    dispose_engines()


def test_plan_is_a_dry_run_and_apply_deletes_exactly_it(settings: Settings) -> None:
    old_ds, new_ds, busy_ds = _dataset(settings, 1, 40), _dataset(settings, 2, 1), _dataset(settings, 3, 40)
    old_model, new_model = _model(settings, "old-model", 40), _model(settings, "new-model", 1)
    store = JobStore(settings.resolved_database_url)
    kw = {"base_model": "lab-clip-base", "recipe": "diva", "diffusion": "lab-sd", "params": {}}
    store.create(dataset=busy_ds, **kw)  # queued: its dataset must stay
    done = store.create(dataset=old_ds, **kw).id
    store.claim(done, "w", stale_after_s=60)
    store.finish(done, "w", JobStatus.failed, error="x")
    settings.job_run_dir(done).mkdir(parents=True)
    (settings.job_run_dir(done) / "ckpt.bin").write_bytes(b"0" * 1000)

    policy = retention.RetentionPolicy(datasets_days=30, models_days=30, jobs_days=30)
    planned = retention.plan(settings, policy, now=datetime.now(timezone.utc) + timedelta(days=31))
    kinds = {(c.kind, c.id) for c in planned}
    assert ("dataset", old_ds) in kinds and ("dataset", busy_ds) not in kinds
    assert ("model", "old-model") in kinds
    assert ("job", done) in kinds and next(c for c in planned if c.kind == "job").bytes == 1000
    assert not any(c.id.startswith("lab-") for c in planned)  # built-ins are never candidates
    assert old_model.is_dir() and settings.job_dir(done).is_dir()  # planning deleted nothing

    only_old = [c for c in planned if c.id in {old_ds, "old-model", done}]
    removed = retention.apply(settings, only_old)
    assert {c.id for c in removed} == {old_ds, "old-model", done}
    assert not old_model.exists() and new_model.is_dir() and not settings.job_dir(done).exists()
    assert {m.id for m in DatasetStore(settings.datasets_dir).list()} == {new_ds, busy_ds}
    assert retention.apply(settings, only_old) == []  # already gone: nothing, no error


def test_models_by_age_keep_the_young(settings: Settings) -> None:
    _model(settings, "young", 1)
    old = _model(settings, "aged", 90)
    planned = retention.plan(settings, retention.RetentionPolicy(models_days=30))
    assert [c.id for c in planned] == ["aged"] and old.is_dir()


def test_cli_dry_run_then_apply(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app
    from state.settings import get_settings

    old = _model(settings, "aged", 90)
    monkeypatch.setenv("DIVA_HOME", str(settings.home))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        dry = runner.invoke(app, ["retention", "--models-older-than", "30"])
        assert dry.exit_code == 0 and "would delete\tmodel\taged" in dry.output and old.is_dir()
        done = runner.invoke(app, ["retention", "--models-older-than", "30", "--apply"])
        assert done.exit_code == 0 and "deleted 1 items" in done.output and not old.exists()
        refused = runner.invoke(app, ["retention"])
        assert refused.exit_code != 0 and "no policy" in refused.output
    finally:
        get_settings.cache_clear()
