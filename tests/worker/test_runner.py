"""The job runner in-process (no broker): claim rules, failures users can read, publishing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.config import Settings
from service.jobs import JobStore
from worker.runner import run_job

try:  # with or without tests/__init__.py
    from tests.e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, copy_home
except ImportError:
    from e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, copy_home


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> LabHome:
    return build_template(tmp_path_factory.mktemp("runner-lab") / "home")


@pytest.fixture
def lab(template: LabHome, tmp_path: Path) -> tuple[LabHome, Settings, JobStore]:
    lab = copy_home(template, tmp_path / "home")
    settings = Settings(home=lab.home, device="cpu", publish_pairs_per_pattern=1, job_heartbeat_s=0.2)
    return lab, settings, JobStore(settings.resolved_database_url)


def _create(store: JobStore, dataset: str, overrides: dict | None = None) -> str:
    fields = {
        "base_model": BASE_MODEL,
        "dataset": dataset,
        "recipe": RECIPE,
        "diffusion": DIFFUSION,
        "params": {"steps": 4, "batch_size": 4},
        **(overrides or {}),
    }
    return store.create(**fields).id  # type: ignore[arg-type]


def test_job_runs_publishes_and_is_idempotent(lab: tuple[LabHome, Settings, JobStore]) -> None:
    home, settings, store = lab
    job_id = _create(store, home.dataset)
    assert run_job(job_id, settings).startswith("succeeded")
    job = store.get(job_id)
    assert job.status == "succeeded" and job.progress["step"] == 4
    folder = settings.models_dir / job.result_model
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (
        manifest["base"] == BASE_MODEL and manifest["job"] == job_id and manifest["lineage"] == [BASE_MODEL]
    )
    assert manifest["eval"]["gate"]["passed"] == job.metrics["gate_passed"]
    assert "open_clip/open_clip_model.safetensors" in manifest["checksums"]
    assert (folder / "report" / "report.json").is_file() and (folder / "README.md").is_file()
    # a duplicate message (redelivery) changes nothing
    assert run_job(job_id, settings) == "skipped: already succeeded"
    assert store.get(job_id).attempts == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"recipe": "nope"}, "unknown recipe 'nope'"),
        ({"diffusion": "missing-sd"}, "unknown diffusion model 'missing-sd'"),
        ({"base_model": "ghost"}, "unknown base model 'ghost'"),
        ({"dataset": "ds-00000000000000000000"}, "no dataset 'ds-00000000000000000000'"),
        ({"params": {"steps": 2, "projector_warmup_steps": 5}}, "projector_warmup_steps"),
    ],
)
def test_setup_problems_fail_with_a_clear_message(
    lab: tuple[LabHome, Settings, JobStore], overrides: dict, message: str
) -> None:
    home, settings, store = lab
    job_id = _create(store, home.dataset, overrides)
    assert run_job(job_id, settings).startswith("failed")
    job = store.get(job_id)
    assert job.status == "failed" and message in job.error
    assert not any(settings.models_dir.glob(f"*{job_id[:8]}*"))


def test_cancelled_before_start_never_runs(lab: tuple[LabHome, Settings, JobStore]) -> None:
    home, settings, store = lab
    job_id = _create(store, home.dataset)
    store.request_cancel(job_id)
    assert run_job(job_id, settings) == "skipped: already cancelled"
    assert store.get(job_id).started_at is None
