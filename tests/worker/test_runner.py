"""The job runner in-process (no broker): claim rules, failures users can read, publishing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from state.jobs import JobStore
from state.settings import Settings
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
    settings = Settings(
        home=lab.home,
        device="cpu",
        publish_pairs_per_pattern=1,
        job_heartbeat_s=0.2,
        publish_gate_tolerance=100,
    )
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
    # published with its exports: ONNX Runtime can serve it and MLLM teams can download hf/ at once
    assert manifest["eval"]["exports"] == {"onnx": "ok", "hf": "ok"}
    assert {"onnx/visual.onnx", "onnx/textual.onnx", "hf/model.safetensors"} <= set(manifest["checksums"])
    assert not (settings.jobs_dir / job_id / "run").exists()  # checkpoints freed once published
    # a duplicate message (redelivery) changes nothing
    assert run_job(job_id, settings) == "skipped: already succeeded"
    assert store.get(job_id).attempts == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"recipe": "nope"}, "unknown recipe 'nope'"),
        ({"diffusion": "missing-sd"}, "unknown diffusion model 'missing-sd'"),
        ({"base_model": "ghost"}, "base_model: unknown model 'ghost'"),
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


def test_gate_failure_keeps_the_model_unpublished_unless_always(
    lab: tuple[LabHome, Settings, JobStore], tmp_path: Path
) -> None:
    """Two random towers with different zero-shot scores: the weaker one 'trained' from the
    stronger one must fail a zero-tolerance gate."""
    from trainer.artifacts import ModelArtifact
    from trainer.backbones.factory import save_open_clip
    from trainer.eval import evaluate_zeroshot
    from worker.publish import benchmark_dir, publish

    home, settings, store = lab
    settings = settings.model_copy(update={"publish_gate_tolerance": 0.0})
    bench = benchmark_dir(settings)
    strong, weak = _stronger_and_weaker(lambda b: evaluate_zeroshot(b, bench / "classify").top1, range(10))
    base = _write_base(settings, "strong-base", strong)
    save_open_clip(weak, tmp_path / "weak")  # type: ignore[arg-type]

    gated = _create(store, home.dataset, {"base_model": "strong-base"})
    outcome = publish(store.get(gated), base, tmp_path / "weak", settings)
    assert outcome.model_id is None and "not published: zero-shot gate failed" in outcome.message
    kept = ModelArtifact(settings.jobs_dir / gated / "unpublished").read_manifest()
    assert not kept.published and kept.eval["gate"]["passed"] is False
    assert not (settings.models_dir / kept.id).exists()

    forced = _create(store, home.dataset, {"base_model": "strong-base", "publish": "always"})
    outcome = publish(store.get(forced), base, tmp_path / "weak", settings)
    assert outcome.model_id and "published anyway" in outcome.message
    assert ModelArtifact(settings.models_dir / outcome.model_id).read_manifest().published


def test_mmvp_regression_is_flagged_and_blocks_when_asked(
    lab: tuple[LabHome, Settings, JobStore], tmp_path: Path
) -> None:
    """Two random towers with different MMVP: the weaker one 'trained' from the stronger one."""
    from trainer.backbones.factory import save_open_clip
    from trainer.eval import evaluate_mmvp
    from worker.publish import benchmark_dir, publish

    home, settings, store = lab
    settings = settings.model_copy(update={"publish_gate_tolerance": 100.0, "publish_mmvp_tolerance": 0.0})
    bench = benchmark_dir(settings)
    strong, weak = _stronger_and_weaker(lambda b: evaluate_mmvp(b, bench).average, range(100, 120))
    base = _write_base(settings, "sharp-base", strong)
    save_open_clip(weak, tmp_path / "blurry")  # type: ignore[arg-type]

    flagged = _create(store, home.dataset, {"base_model": "sharp-base"})
    outcome = publish(store.get(flagged), base, tmp_path / "blurry", settings)
    assert outcome.model_id and outcome.metrics["mmvp_regressed"] is True
    assert "warning: fine-grained regressed" in outcome.message
    report = (settings.models_dir / outcome.model_id / "report" / "summary.md").read_text()
    assert "Fine-grained check: **REGRESSED**" in report

    blocking = settings.model_copy(update={"publish_block_on_mmvp_regression": True})
    held = _create(store, home.dataset, {"base_model": "sharp-base"})
    outcome = publish(store.get(held), base, tmp_path / "blurry", blocking)
    assert outcome.model_id is None and "not published: fine-grained check regressed" in outcome.message


def _stronger_and_weaker(score, seeds: range) -> tuple[object, object]:
    """Two random tiny towers that ``score`` tells apart: (higher-scoring, lower-scoring)."""
    import torch

    from trainer.backbones.factory import create_clip

    by_score: dict[float, object] = {}
    for seed in seeds:
        torch.manual_seed(seed)
        bundle = create_clip("diva-tiny-vit")
        by_score.setdefault(score(bundle), bundle)
        if len(by_score) == 2:
            return by_score[max(by_score)], by_score[min(by_score)]
    raise AssertionError(f"{len(seeds)} random towers scored the same")


def _write_base(settings: Settings, model_id: str, bundle: object):
    """``bundle`` as a registry model folder (what a job's base looks like); its artifact."""
    from trainer.artifacts import ModelArtifact, ModelManifest
    from trainer.backbones.factory import save_open_clip

    base = ModelArtifact(settings.models_dir / model_id)
    save_open_clip(bundle, base.open_clip_dir)  # type: ignore[arg-type]
    base.write_manifest(
        ModelManifest(
            id=model_id, architecture="diva-tiny-vit", embed_dim=32, image_size=32,
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        )
    )  # fmt: skip
    return base
