"""Evaluate a finished job's encoder against its base, gate it, and publish it to the registry.

Both models are scored with the same protocol on the same synthetic MMVP benchmark (generated
once per home from the lab's scene world) and on its zero-shot classification set; the
zero-shot gate decides publication unless the job asked for ``publish: always``. The model
folder is assembled in a staging folder and renamed into ``settings.models_dir`` in one step,
so the service's registry (which rescans on lookup) serves it at once and never sees half of it.
A gated model is kept unpublished under the job's folder, with the reason in the job.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state.jobs import Job
from state.settings import Settings
from trainer.artifacts import ModelArtifact, ModelManifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    model_id: str | None  # None when the gate kept it unpublished
    metrics: dict[str, Any]
    message: str


def benchmark_dir(settings: Settings) -> Path:
    """The synthetic MMVP benchmark (+ classify/ set), written once and shared by all jobs."""
    from trainer.eval import make_synthetic

    pairs = settings.publish_pairs_per_pattern
    final = settings.benchmarks_dir / f"synthetic-mmvp-{pairs}"
    if (final / ".complete").is_file():
        return final
    staging = final.with_name(f".{final.name}-{uuid.uuid4().hex[:8]}")
    make_synthetic(staging, pairs_per_pattern=pairs, seed=0)
    (staging / ".complete").write_text("ok\n")
    try:
        staging.rename(final)
    except OSError:  # another worker finished first
        shutil.rmtree(staging, ignore_errors=True)
    return final


def new_model_id(job: Job) -> str:
    return f"{job.base_model}-{job.recipe}-{job.id[:8]}"[-128:].lstrip("-._")


def publish(job: Job, base: ModelArtifact, trained_dir: Path | str, settings: Settings) -> Published:
    from trainer.backbones.factory import create_clip, manifest_for
    from trainer.eval import (
        evaluate_mmvp,
        evaluate_zeroshot,
        fine_grained_check,
        write_report,
        zero_shot_gate,
    )

    device = _device(settings)
    bench = benchmark_dir(settings)
    model_id = new_model_id(job)
    base_bundle = create_clip(str(base.open_clip_dir), device=device)
    post_bundle = create_clip(str(trained_dir), device=device)
    mmvp_base = evaluate_mmvp(base_bundle, bench, device=device)
    mmvp_post = evaluate_mmvp(post_bundle, bench, device=device)
    zs_base = evaluate_zeroshot(base_bundle, bench / "classify", device=device)
    zs_post = evaluate_zeroshot(post_bundle, bench / "classify", device=device)
    gate = zero_shot_gate(zs_base.top1, zs_post.top1, tolerance=settings.publish_gate_tolerance)
    fine = fine_grained_check(mmvp_base.average, mmvp_post.average, tolerance=settings.publish_mmvp_tolerance)
    blocked = fine.regressed and settings.publish_block_on_mmvp_regression
    publish_it = (gate.passed and not blocked) or job.publish == "always"

    staging = settings.models_dir / f".staging-{model_id}-{uuid.uuid4().hex[:6]}"
    artifact = ModelArtifact(staging)
    shutil.copytree(_open_clip_folder(trained_dir), artifact.open_clip_dir)
    write_report(
        artifact.report_dir,
        mmvp_base,
        mmvp_post,
        base_zeroshot=zs_base,
        post_zeroshot=zs_post,
        gate=gate,
        fine_grained=fine,
        names=(job.base_model, model_id),
    )
    mmvp_post.save(artifact.report_dir)
    exports = _write_exports(post_bundle, artifact, settings.publish_exports) if publish_it else {}
    evals = {
        "mmvp_synthetic": {"average": mmvp_post.average, "patterns": mmvp_post.patterns},
        "mmvp_synthetic_base": {"average": mmvp_base.average, "patterns": mmvp_base.patterns},
        "zeroshot_synthetic": {"top1": zs_post.top1, "top5": zs_post.top5},
        "zeroshot_synthetic_base": {"top1": zs_base.top1, "top5": zs_base.top5},
        "gate": {"passed": gate.passed, "reason": gate.reason, "tolerance": gate.tolerance},
        "fine_grained": {"regressed": fine.regressed, "reason": fine.reason, "tolerance": fine.tolerance},
    }
    if exports:
        evals["exports"] = exports
    base_manifest = base.read_manifest()
    manifest = manifest_for(
        post_bundle,
        model_id,
        base=job.base_model,
        recipe=job.recipe,
        job=job.id,
        patch_size=base_manifest.patch_size,
        interpolation=str(post_bundle.preprocess_cfg.get("interpolation", base_manifest.interpolation)),
        resize_mode=str(post_bundle.preprocess_cfg.get("resize_mode", base_manifest.resize_mode)),
        feature_layer=base_manifest.feature_layer,
        eval=evals,
        lineage=[*base_manifest.lineage, job.base_model],
        description=f"{job.base_model} post-trained with recipe {job.recipe!r} by job {job.id}",
        published=publish_it,
        owner=job.owner,
    )
    artifact.write_manifest(manifest)
    (staging / "README.md").write_text(_model_card(manifest, job, gate.reason))

    metrics = {
        "mmvp_base": mmvp_base.average,
        "mmvp": mmvp_post.average,
        "zeroshot_top1_base": zs_base.top1,
        "zeroshot_top1": zs_post.top1,
        "gate_passed": gate.passed,
        "gate_reason": gate.reason,
        "mmvp_regressed": fine.regressed,
        "fine_grained_reason": fine.reason,
    }
    warning = f"; warning: fine-grained {fine.reason}" if fine.regressed else ""
    if publish_it:
        final = settings.models_dir / model_id
        if final.exists():  # a rerun after a crash mid-publish: replace the earlier attempt
            shutil.rmtree(final)
        staging.rename(final)
        note = "published" if gate.passed and not blocked else "published anyway (publish: always)"
        if not gate.passed:
            note += f"; gate {gate.reason}"
        return Published(model_id, metrics, f"{note}; report at /v1/models/{model_id}{warning}")
    kept = settings.job_dir(job.id) / "unpublished"
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), kept)
    why = f"zero-shot gate {gate.reason}" if not gate.passed else f"fine-grained check {fine.reason}"
    also = warning if not gate.passed else ""  # a blocked job's reason is the warning already
    return Published(None, metrics, f"not published: {why}; kept at {kept}{also}")


def _write_exports(bundle: Any, artifact: ModelArtifact, formats: list[str]) -> dict[str, str]:
    """Fill ``onnx/`` and ``hf/`` so the model is servable by ONNX Runtime and downloadable at once.

    A format the architecture cannot take (e.g. hf for a tower transformers cannot express) is
    recorded with its reason instead of failing the job: the open_clip weights are what count.
    """
    from trainer.export import export_model

    targets = {"onnx": artifact.onnx_dir, "hf": artifact.hf_dir}
    done: dict[str, str] = {}
    for fmt in formats:
        if fmt not in targets:
            raise ValueError(f"DIVA_PUBLISH_EXPORTS: unknown format {fmt!r}; choose from {sorted(targets)}")
        try:
            export_model(bundle, fmt, targets[fmt])
            done[fmt] = "ok"
        except Exception as exc:  # one format failing must not lose a trained model
            log.warning("publish export %s failed: %s", fmt, exc)
            shutil.rmtree(targets[fmt], ignore_errors=True)
            done[fmt] = f"skipped: {exc}"
    return done


def _open_clip_folder(trained_dir: Path | str) -> Path:
    folder = Path(trained_dir)
    return folder / "open_clip" if (folder / "open_clip").is_dir() else folder


def _device(settings: Settings) -> str:
    if settings.device != "auto":
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _model_card(manifest: ModelManifest, job: Job, gate_reason: str) -> str:
    ev = manifest.eval
    rows = "\n".join(
        f"| {name} | {ev[f'{key}_base'][field]:.2f} | {ev[key][field]:.2f} |"
        for name, key, field in (
            ("synthetic MMVP average", "mmvp_synthetic", "average"),
            ("synthetic zero-shot top-1", "zeroshot_synthetic", "top1"),
        )
    )
    return (
        f"# {manifest.id}\n\n{manifest.description}.\n\n"
        f"| metric | {manifest.base} | {manifest.id} |\n|---|---|---|\n{rows}\n\n"
        f"Zero-shot gate: {gate_reason}.\n\n"
        f"Training parameters: `{json.dumps(job.params, sort_keys=True)}`; lineage: "
        f"{' -> '.join([*manifest.lineage, manifest.id])}.\n\n"
        "Charts and per-pattern numbers: `report/`. Weights: `open_clip/` "
        "(`create_clip('local-dir:<this folder>/open_clip')`).\n"
    )
