"""Turn a job row into the trainer's :class:`TrainConfig` (the one place that maps the two).

The API calls :func:`build_train_config` too, before queueing, so a recipe that cannot run
(an unknown preset, ``projector_warmup_steps >= steps``, ...) is a 422 now, not a failed job
in an hour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.core.config import Settings
from trainer.artifacts import BUILTIN_MODELS_DIR, check_model_id


class JobSetupError(ValueError):
    """The job names something that does not exist or cannot be combined; the message says what."""


def _checked(kind: str, value: str) -> str:
    try:
        return check_model_id(value)
    except ValueError as exc:
        raise JobSetupError(f"{kind}: {exc}") from None


def resolve_diffusion(model_id: str, settings: Settings) -> Path:
    """A diffusion id -> its diffusers folder: ``<home>/diffusion/<id>``, then the built-ins."""
    _checked("diffusion", model_id)
    candidates = [settings.home / "diffusion" / model_id, BUILTIN_MODELS_DIR / model_id]
    for folder in candidates:
        if (folder / "model_index.json").is_file() or (folder / "unet").is_dir():
            return folder.resolve()
    raise JobSetupError(
        f"unknown diffusion model {model_id!r}: looked in {', '.join(str(c) for c in candidates)}"
    )


def resolve_recipe(recipe: str, diffusion: str, settings: Settings) -> Path:
    """A recipe name -> its YAML file: ``<home>/recipes/`` (a site's own), then the presets.

    Against a lab diffusion model ``lab-<name>`` is tried first, so ``recipe: diva`` picks the
    lab-sized variant of DIVA there and the full-size one on SD-2.1.
    """
    from trainer.recipes import PRESETS_DIR

    _checked("recipe", recipe)
    names = [f"lab-{recipe}", recipe] if diffusion.startswith("lab-") else [recipe]
    folders = [settings.home / "recipes", PRESETS_DIR]
    for name in names:
        for folder in folders:
            if (folder / f"{name}.yaml").is_file():
                return folder / f"{name}.yaml"
    choices = ", ".join(sorted({p.stem for f in folders for p in f.glob("*.yaml")})) or "none installed"
    raise JobSetupError(f"unknown recipe {recipe!r}; available: {choices}")


def build_train_config(
    *,
    job_id: str,
    base_model_dir: Path,
    dataset_dir: Path,
    recipe: str,
    diffusion: str,
    overrides: dict[str, Any],
    settings: Settings,
) -> Any:
    """The validated TrainConfig for one job (raises :class:`JobSetupError` with the reason)."""
    from trainer.recipes import RecipeError, load_train_config

    preset = resolve_recipe(recipe, diffusion, settings)
    fixed = {
        "model": str(base_model_dir),
        "pretrained": None,
        "diffusion": str(resolve_diffusion(diffusion, settings)),
        "data.path": str(dataset_dir),
        "data.kind": "folder",
        "output_dir": str(job_run_dir(settings, job_id)),
        "device": settings.device,
    }
    try:
        return load_train_config(preset, {**overrides, **fixed})
    except RecipeError as exc:
        raise JobSetupError(str(exc)) from None


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.jobs_dir / job_id


def job_run_dir(settings: Settings, job_id: str) -> Path:
    """Where the trainer writes checkpoints (resume reads them) and the final open_clip folder."""
    return job_dir(settings, job_id) / "run"


def resolve_base_model(model_id: str, settings: Settings) -> Any:
    """A registry id -> its :class:`ModelArtifact` (same roots and precedence as the service)."""
    from trainer.artifacts import list_artifacts

    _checked("base_model", model_id)
    artifacts = {a.id: a for a in list_artifacts(BUILTIN_MODELS_DIR, settings.models_dir)}
    if model_id not in artifacts:
        known = ", ".join(sorted(artifacts)) or "none"
        raise JobSetupError(f"unknown base model {model_id!r}; available: {known}")
    return artifacts[model_id]
