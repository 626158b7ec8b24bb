"""``diva lab build``: generate -> pretrain CLIP -> pretrain diffusion -> evaluate -> post-train -> evaluate.

Every stage is a plain function of the config and the seed, so the same seed rebuilds the same
models. The post-training stage is the project's own trainer (``trainer.train.run_training``) with
the ``lab-diva`` recipe, and both evaluations are the project's own (``trainer.eval``): the lab
tests the real code path, not a copy of it. Models land in registry layout under
``<out>/models`` (``lab-clip-base``, ``lab-clip-diva``: manifest + open_clip/; ``lab-sd``: a
diffusers folder); ``install_builtin`` copies them to ``trainer/lab/builtin``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainer.artifacts import BUILTIN_MODELS_DIR, ModelArtifact, ModelManifest
from trainer.lab.clip_pretrain import ClipPretrainConfig
from trainer.lab.diffusion_pretrain import DiffusionPretrainConfig
from trainer.lab.protocol import TEST_PAIRS_PER_PATTERN, TEST_SEEDS
from trainer.lab.successors import SUCCESSOR_RECIPES

BASE_ID, DIVA_ID, SD_ID = "lab-clip-base", "lab-clip-diva", "lab-sd"
STAGES = (
    "generate",
    "pretrain-clip",
    "pretrain-diffusion",
    "evaluate-base",
    "post-train",
    "evaluate-post",
    "evaluate-heldout",
    "evaluate-plain",
)

# Other post-trainings of the same base, scored on the same benchmark (``diva lab build --compare``):
# DIVA's own condition (CLS + every patch token through a new random Linear, the MetaCLIP/DFN
# recipe, full tower, SGD, plain epsilon MSE). Off by default: with it the two-thread build took
# 15.5 minutes, over the 15-minute target (docs/lab-log.md).
COMPARISON_VARIANTS: dict[str, dict[str, Any]] = {"diva-condition": SUCCESSOR_RECIPES["diva-condition"]}
BRIDGE_CAPTIONS = "captions.txt"  # in the run folder, when the recipe fits its projector on text
CEILING_STEPS = 60  # the feedback-ceiling probe's SGD steps when asked for (``--ceiling``)
StageProgress = Callable[[str, int, int, str], None]  # (stage, done, total, note)


class LabBuildConfig(BaseModel):
    """Everything ``diva lab build`` does; ``quick()`` shrinks every stage to a smoke test."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    out: Path = Path("var/lab")
    clip_images: int = Field(6000, ge=8, description="Distinct drawn scenes for CLIP/diffusion pretraining.")
    clip_style_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the CLIP's pretraining images drawn in a random look "
        "(trainer.scenes.render.sample_style: canvas, edges, size, place, tilt); lab-sd and the feedback "
        "images have knobs of their own (diffusion.fresh_style_share, feedback_style_share), the "
        "benchmark stays canonical. 0 = every image canonical.",
    )
    clip_looks: int = Field(
        1, ge=1, description="Drawings of each CLIP pretraining scene (fresh looks when styled)."
    )
    feedback_images: int = Field(
        8000,
        ge=1,
        description="Images (no captions) written for post-training. 8,000 distinct images instead "
        "of 2,000 seen about five times each: +12.5 against +11.7 on the development draw "
        "(16,000: +12.5 too; docs/lab-log.md, tenth session).",
    )
    feedback_style_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the feedback images drawn in a random look (sample_style, from a "
        "stream of their own: the scenes are those of the canonical set). With a fresh-look CLIP and "
        "lab-sd, post-training then sees the world both were pretrained on. 0 = all canonical.",
    )
    image_size: int = Field(64, ge=16)
    clip: ClipPretrainConfig = Field(default_factory=ClipPretrainConfig)
    diffusion: DiffusionPretrainConfig = Field(default_factory=DiffusionPretrainConfig)
    sd_text_teacher: ClipPretrainConfig | None = Field(
        None,
        description="lab-sd reads captions through the text tower of a CLIP of its own, trained as "
        "this config's text teacher phase (trainer.lab.clip_pretrain.train_text_teacher), as Stable "
        "Diffusion reads them through OpenCLIP-H rather than through the CLIP DIVA improves. None = "
        "through lab-clip-base's text tower. Post-training then needs a projector between the two "
        "spaces (the recipe's projector_init: text, fitted on the build's captions).",
    )
    bridge_captions: int = Field(
        4000, ge=2, description="Full captions of fresh scenes written for projector_init: text."
    )
    reuse: Path | None = Field(
        None,
        description="A models folder holding lab-clip-base and lab-sd (a build's <out>/models, or "
        "trainer/lab/builtin): post-train and evaluate those instead of pretraining new ones, so a "
        "new recipe reaches the shipped base exactly (its CLIP was built with one thread on another "
        "machine, and float sums differ across machines and thread counts).",
    )
    recipe: str = Field("lab-diva", description="Post-training recipe: a preset name or a YAML file.")
    recipe_overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted keys, e.g. steps.")
    benchmark_pairs: int = Field(
        40, ge=1, description="Synthetic MMVP pairs per pattern of the development draw (tuned on)."
    )
    benchmark_images_per_class: int = Field(40, ge=1)
    heldout_seeds: tuple[int, ...] = Field(
        TEST_SEEDS, description="Test draws (trainer.lab.protocol): reported, never tuned on; () = off."
    )
    heldout_pairs: int = Field(
        TEST_PAIRS_PER_PATTERN, ge=1, description="Pairs per pattern of each test draw."
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Extra post-trainings of the same base for comparison: name -> recipe overrides "
        "(COMPARISON_VARIANTS with --compare).",
    )
    plain_per_shape: int = Field(
        60,
        ge=0,
        description="Plain drawings per shape the lab never drew (trainer.lab.plain), filled and hollow, "
        "for the zero-shot robustness check; 0 = off.",
    )
    probe_pairs: int = Field(10, ge=0, description="Pairs per pattern for the diagnostic probes; 0 = off.")
    ceiling_steps: int = Field(
        0,
        ge=0,
        description="SGD steps of the feedback-ceiling probe; 0 = off (``--ceiling`` sets "
        f"{CEILING_STEPS}). It is most of the probes' cost: 179 of 208 s with two threads on an AVX2 "
        "2-core machine (docs/lab-log.md).",
    )

    @field_validator("reuse")
    @classmethod
    def _reuse_holds_both_models(cls, reuse: Path | None) -> Path | None:
        """Checked with the config, so ``diva lab build --reuse`` refuses a wrong folder up front."""
        if reuse is not None:
            missing = [m for m in (BASE_ID, SD_ID) if not (Path(reuse) / m).is_dir()]
            if missing:
                raise ValueError(f"no {' or '.join(missing)} in {reuse} to reuse; run a full build first")
        return reuse

    @classmethod
    def quick(cls, **changes: Any) -> LabBuildConfig:
        """Every stage on a few steps (the end-to-end test and ``--quick``)."""
        base: dict[str, Any] = {
            "clip_images": 256,
            "feedback_images": 32,
            "clip": {"steps": 8, "batch_size": 32, "warmup_steps": 2, "text_teacher_steps": 8},
            "diffusion": {"steps": 4, "batch_size": 8, "warmup_steps": 1},
            "recipe_overrides": {"steps": 4, "batch_size": 4, "checkpoint_every": 4},
            "benchmark_pairs": 2,
            "benchmark_images_per_class": 2,
            "heldout_seeds": (7001,),
            "heldout_pairs": 2,
            "plain_per_shape": 2,
            "probe_pairs": 1,
            "ceiling_steps": 2,
            "variants": {},
        }
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return cls.model_validate(base)


@dataclass
class LabResult:
    """Where the models and the report are, the scores and how long each stage took."""

    models_dir: Path
    report_dir: Path
    base: dict[str, Any]
    post: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    held_out: dict[str, Any] | None = None  # trainer.lab.protocol.compare_held_out
    plain: dict[str, Any] | None = None  # trainer.lab.plain.plain_scores


class Stopwatch:
    """Wall and CPU seconds per stage. On a shared machine wall time depends on the neighbours;
    CPU time of this process (all its threads) is the honest basis for extrapolating."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        self.wall[stage] = time.perf_counter() - self._wall
        self.cpu[stage] = time.process_time() - self._cpu
        self.start()


def machine_info() -> dict[str, Any]:
    """What the stage times were measured on: the same build took 2.4x longer per stage on one
    2-core machine than on another (docs/lab-log.md), so a time without its machine says little."""
    import os
    import platform

    import torch

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def build_lab(config: LabBuildConfig, *, progress: StageProgress | None = None) -> LabResult:
    """Run every stage; return the scores and paths (see the module docstring)."""

    from trainer.lab.data import make_scene_set
    from trainer.lab.evaluate import make_lab_benchmark

    out = Path(config.out)
    models = out / "models"
    clock = Stopwatch()
    notify = progress or (lambda stage, done, total, note: None)

    def stage_bar(stage: str) -> Callable[[int, int, float], None]:
        return lambda done, total, loss: notify(stage, done, total, f"loss {loss:.3f}")

    clock.start()
    notify("generate", 0, 1, "drawing scenes")
    if config.reuse is None:  # pretraining scenes: a reused base and lab-sd need none
        data = make_scene_set(config.clip_images, config.seed, config.image_size)
        clip_data = (
            make_scene_set(
                config.clip_images, config.seed, config.image_size, config.clip_style_share, config.clip_looks
            )
            if config.clip_style_share
            else data
        )
    feedback_dir = write_feedback_images(
        out / "images", config.feedback_images, config.seed, config.image_size, config.feedback_style_share
    )
    benchmark = make_lab_benchmark(
        out / "benchmark",
        pairs_per_pattern=config.benchmark_pairs,
        images_per_class=config.benchmark_images_per_class,
    )
    scenes = "no" if config.reuse is not None else len(data)
    notify("generate", 1, 1, f"{scenes} scenes, {config.feedback_images} feedback images")
    clock.lap("generate")

    base_artifact = ModelArtifact(models / BASE_ID)
    sd_dir = models / SD_ID
    if config.reuse is not None:
        base_bundle = reuse_models(Path(config.reuse), models, notify)
        clock.lap("pretrain-clip")
    else:
        _fresh(base_artifact.root)
        from trainer.lab.clip_pretrain import pretrain_clip

        base_bundle = pretrain_clip(
            config.clip,
            clip_data,
            base_artifact.open_clip_dir,
            seed=config.seed,
            progress=stage_bar("pretrain-clip"),
        )
        clock.lap("pretrain-clip")

        _fresh(sd_dir)
        from trainer.lab.diffusion_pretrain import pretrain_diffusion

        reader = base_bundle
        if config.sd_text_teacher is not None:
            from trainer.lab.clip_pretrain import train_text_teacher

            teacher_dir = out / "sd-text-teacher"
            _fresh(teacher_dir)
            reader = train_text_teacher(
                config.sd_text_teacher,
                data,
                teacher_dir,
                seed=config.seed,
                progress=stage_bar("pretrain-diffusion"),
            )
        pretrain_diffusion(
            config.diffusion,
            data,
            sd_dir,
            reader,
            seed=config.seed,
            progress=stage_bar("pretrain-diffusion"),
        )
        clock.lap("pretrain-diffusion")

    from trainer.lab.evaluate import evaluate_lab

    notify("evaluate-base", 0, 1, "")
    base_scores = evaluate_lab(base_bundle, benchmark)
    write_manifest(
        base_artifact, base_bundle, base=None, recipe="lab-pretrain", scores=base_scores, seed=config.seed
    )
    notify("evaluate-base", 1, 1, f"MMVP {base_scores.mmvp_average:.1f}")
    clock.lap("evaluate-base")

    post_bundle = post_train(config, base_artifact.root, sd_dir, feedback_dir, out / "runs" / DIVA_ID, notify)
    diva_artifact = ModelArtifact(models / DIVA_ID)
    _fresh(diva_artifact.root)
    from trainer.backbones.factory import save_open_clip

    save_open_clip(post_bundle, diva_artifact.open_clip_dir)
    clock.lap("post-train")

    notify("evaluate-post", 0, 1, "")
    post_scores = evaluate_lab(post_bundle, benchmark)
    write_manifest(
        diva_artifact, post_bundle, base=BASE_ID, recipe=config.recipe, scores=post_scores, seed=config.seed
    )
    notify("evaluate-post", 1, 1, f"MMVP {post_scores.mmvp_average:.1f}")
    clock.lap("evaluate-post")

    variants = {}
    for name, overrides in config.variants.items():
        variant_config = config.model_copy(
            update={"recipe_overrides": {**config.recipe_overrides, **overrides}}
        )
        bundle = post_train(
            variant_config,
            base_artifact.root,
            sd_dir,
            feedback_dir,
            out / "runs" / name,
            notify,
            f"variant:{name}",
        )
        variants[name] = {"overrides": overrides, **evaluate_lab(bundle, benchmark).to_dict()}
        clock.lap(f"variant:{name}")
    held_out = None
    if config.heldout_seeds:
        from trainer.lab.protocol import compare_held_out, evaluate_held_out

        notify("evaluate-heldout", 0, 2, "")
        kw = {"seeds": tuple(config.heldout_seeds), "pairs_per_pattern": config.heldout_pairs}
        base_held = evaluate_held_out(base_bundle, out / "heldout", **kw)
        notify("evaluate-heldout", 1, 2, "")
        held_out = compare_held_out(base_held, evaluate_held_out(post_bundle, out / "heldout", **kw))
        gain = held_out["gain"]
        notify("evaluate-heldout", 2, 2, f"gain {gain['mean']:+.1f} ± {gain['std']:.1f}")
        clock.lap("evaluate-heldout")
    plain = None
    if config.plain_per_shape:
        from trainer.lab.plain import plain_scores

        notify("evaluate-plain", 0, 1, "")
        plain = plain_scores(
            {BASE_ID: base_bundle, DIVA_ID: post_bundle}, out / "plain", per_shape=config.plain_per_shape
        )
        filled = plain["filled"]
        notify(
            "evaluate-plain", 1, 1, f"filled {filled[BASE_ID]['top1']:.1f} -> {filled[DIVA_ID]['top1']:.1f}"
        )
        clock.lap("evaluate-plain")
    probes = run_probes(config, sd_dir, base_bundle, post_bundle, out / "runs" / DIVA_ID / BRIDGE_CAPTIONS)
    report_dir = write_lab_report(
        out / "report", config, base_scores, post_scores, clock, probes, variants, held_out, plain
    )
    shutil.copytree(report_dir, diva_artifact.report_dir, dirs_exist_ok=True)
    return LabResult(
        models,
        report_dir,
        base_scores.to_dict(),
        post_scores.to_dict(),
        clock.wall,
        clock.cpu,
        held_out,
        plain,
    )


def reuse_models(source: Path, models: Path, notify: StageProgress):
    """Copy ``source``'s lab-clip-base and lab-sd into ``models``; return the base, loaded."""
    from trainer.backbones.factory import create_clip

    stages = {BASE_ID: "pretrain-clip", SD_ID: "pretrain-diffusion"}  # both checked by LabBuildConfig
    for model_id, stage in stages.items():
        notify(stage, 0, 1, f"reusing {source}")
        if (source / model_id).resolve() != (models / model_id).resolve():
            _fresh(models / model_id)
            shutil.copytree(source / model_id, models / model_id)
        notify(stage, 1, 1, f"reused {source}")
    bundle = create_clip(str(ModelArtifact(models / BASE_ID).open_clip_dir))
    bundle.model.eval()
    return bundle


def write_feedback_images(folder: Path, count: int, seed: int, size: int, style_share: float = 0.0) -> Path:
    """Caption-free PNGs for post-training (a stream of scenes apart from the pretraining set),
    about ``style_share`` of them drawn in a random look. The looks come from a stream of their
    own, so the scenes are the same whatever the share."""
    import numpy as np

    from trainer.lab.data import random_look
    from trainer.scenes import render, sample_scene

    _fresh(folder)
    folder.mkdir(parents=True)
    rng = np.random.default_rng([seed, 1])
    looks = np.random.default_rng([seed, 1, 3])
    for index in range(count):
        scene = sample_scene(rng)
        render(scene, size, random_look(looks, scene, style_share)).save(folder / f"{index:06d}.png")
    return folder


def write_bridge_captions(path: Path, count: int, seed: int) -> Path:
    """Full-detail captions of ``count`` fresh scenes (their own stream), one per line: what a
    ``projector_init: text`` projector is fitted on. Text only: the scenes are never drawn."""
    import numpy as np

    from trainer.scenes import CaptionBias, sample_caption, sample_scene

    rng = np.random.default_rng([seed, 2])
    full = CaptionBias.full()
    lines = [sample_caption(sample_scene(rng), rng, full) for _ in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lab_train_config(config: LabBuildConfig, run_dir: Path, paths: dict[str, str] | None = None):
    """The recipe a build post-trains with: the recipe, ``paths`` (model, diffusion, data.path),
    the build's seed and run folder, its overrides. A projector fitted on text
    (``projector_init: text``) without captions of its own gets the lab's, written into ``run_dir``.
    """
    from trainer.recipes.schema import load_train_config

    overrides = {
        **(paths or {}),
        "output_dir": str(run_dir),
        "seed": config.seed,
        "device": "cpu",
        **config.recipe_overrides,
    }
    if overrides.get("projector_init") == "text" and "projector_captions" not in overrides:
        # the lab's own captions: text only, the scenes are never drawn
        captions = write_bridge_captions(run_dir / BRIDGE_CAPTIONS, config.bridge_captions, config.seed)
        overrides["projector_captions"] = str(captions)
    return load_train_config(config.recipe, overrides)


def post_train(
    config: LabBuildConfig,
    base_dir: Path,
    sd_dir: Path,
    images: Path,
    run_dir: Path,
    notify: StageProgress,
    stage: str = "post-train",
):
    """The project's trainer on the lab models; returns the post-trained bundle (in memory)."""
    from trainer.train import run_training

    _fresh(run_dir)  # a build starts from the base model, never from an older run's checkpoint
    paths = {"model": str(base_dir), "diffusion": str(sd_dir), "data.path": str(images)}
    train_config = lab_train_config(config, run_dir, paths)
    result = run_training(
        train_config,
        progress=lambda event: notify(stage, event.step, event.total, f"loss {event.loss:.3f}"),
    )
    if result.bundle is None:
        raise RuntimeError("post-training stopped before the end; no model to evaluate")
    result.bundle.model.eval()
    return result.bundle


def write_manifest(
    artifact: ModelArtifact, bundle, *, base: str | None, recipe: str, scores, seed: int
) -> None:
    vision = bundle.model_cfg["vision_cfg"]
    manifest = ModelManifest(
        id=artifact.id,
        architecture=bundle.architecture,
        base=base,
        recipe=recipe,
        embed_dim=bundle.embed_dim,
        image_size=bundle.image_size,
        patch_size=int(vision["patch_size"]),
        mean=bundle.mean,
        std=bundle.std,
        context_length=bundle.context_length,
        eval={"lab": scores.to_dict()},
        lineage=[base] if base else [],
        description=(
            f"Miniature-lab CLIP (seed {seed}) "
            + (
                "post-trained with diffusion feedback from lab-sd."
                if base
                else "pretrained on biased captions."
            )
        ),
    )
    artifact.write_manifest(manifest)


def run_probes(
    config: LabBuildConfig, sd_dir: Path, base_bundle, post_bundle, captions: Path | None = None
) -> dict[str, Any]:
    """Diagnostics that explain the scores: what lab-sd renders, what the text tower separates.

    ``captions`` (the post-training run's, when its projector was fitted on text) gives the
    feedback probes the same fitted map from the base's space to lab-sd's.
    """
    if config.probe_pairs == 0:
        return {}
    from trainer.lab.probe import caption_sensitivity, feedback_alignment, feedback_ceiling, text_separation

    bridge = None
    if captions is not None and captions.is_file():
        from trainer.feedback.bridge import read_captions, text_bridge

        bridge = text_bridge(base_bundle, sd_dir, read_captions(captions))
    pairs = config.probe_pairs
    probes: dict[str, Any] = {}
    if config.ceiling_steps:
        probes["feedback_ceiling"] = feedback_ceiling(
            sd_dir,
            base_bundle,
            pairs_per_pattern=pairs,
            steps=config.ceiling_steps,
            seed=config.seed,
            bridge=bridge,
        )
    return {
        **probes,
        "diffusion_caption_sensitivity": caption_sensitivity(
            sd_dir, pairs_per_pattern=pairs, seed=config.seed
        ),
        "feedback_alignment": feedback_alignment(
            sd_dir, base_bundle, pairs_per_pattern=pairs, seed=config.seed, bridge=bridge
        ),
        "text_cosine_base": text_separation(base_bundle, pairs_per_pattern=2 * pairs, seed=config.seed),
        "text_cosine_post": text_separation(post_bundle, pairs_per_pattern=2 * pairs, seed=config.seed),
    }


def write_lab_report(
    out: Path,
    config: LabBuildConfig,
    base,
    post,
    clock: Stopwatch,
    probes: dict[str, Any],
    variants: dict[str, Any],
    held_out: dict[str, Any] | None = None,
    plain: dict[str, Any] | None = None,
) -> Path:
    """The project's standard report (JSON, charts, summary) plus ``lab.json`` with everything.

    Scores on the development draw and, when measured, on the held-out test draws (``heldout.md``)
    and on plain drawings the lab never drew (``plain.md``).
    """
    from trainer.eval import write_report, zero_shot_gate

    gate = zero_shot_gate(base.zeroshot_mean, post.zeroshot_mean, tolerance=1.0)
    write_report(
        out,
        base.mmvp,
        post.mmvp,
        base_zeroshot=base.coarse_zeroshot(),
        post_zeroshot=post.coarse_zeroshot(),
        gate=gate,
        names=(BASE_ID, DIVA_ID),
    )
    lab = {
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "base": base.to_dict(),
        "post": post.to_dict(),
        "delta": {
            "mmvp_average": post.mmvp_average - base.mmvp_average,
            "zeroshot_mean": post.zeroshot_mean - base.zeroshot_mean,
        },
        "gate": {"passed": gate.passed, "reason": gate.reason},
        "stage_seconds": clock.wall,
        "stage_cpu_seconds": clock.cpu,
        "machine": machine_info(),
        "probes": probes,
        "variants": variants,
        "held_out": held_out,
        "plain": plain,
    }
    (out / "lab.json").write_text(json.dumps(lab, indent=2) + "\n")
    if held_out is not None:
        from trainer.lab.protocol import format_held_out

        (out / "heldout.md").write_text(format_held_out(held_out, (BASE_ID, DIVA_ID)))
    if plain is not None:
        from trainer.lab.plain import format_plain

        (out / "plain.md").write_text(
            "Zero-shot top-1 (%) on plain drawings (trainer.lab.plain)\n\n" + format_plain(plain)
        )
    return out


def install_builtin(models_dir: Path, target: Path = BUILTIN_MODELS_DIR) -> Path:
    """Replace the shipped built-in models with a build's (``diva lab build --install``)."""
    for model_id in (BASE_ID, DIVA_ID, SD_ID):
        source = Path(models_dir) / model_id
        if not source.is_dir():
            raise FileNotFoundError(f"no built model {source}; run the build first")
        _fresh(target / model_id)
        shutil.copytree(source, target / model_id)
    return target


def _fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
