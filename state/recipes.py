"""Job params -> the trainer's :class:`TrainConfig`: the one place that maps a job row to a run.

The API calls :func:`build_train_config` before queueing, so a recipe that cannot run (an
unknown preset, ``projector_warmup_steps >= steps``, ...) is a 422 now, not a failed job in an
hour; the worker calls it again when it runs the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from state import catalog
from state.settings import Settings
from trainer.artifacts import InvalidModelId, ModelArtifact, check_model_id


class JobSetupError(ValueError):
    """The job names something that does not exist or cannot be combined; the message says what."""


class JobParams(BaseModel):
    """Training knobs a client may set; everything else comes from the recipe preset."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(200, ge=1, le=1_000_000, description="Optimiser steps.")
    batch_size: int = Field(8, ge=1, le=4096, description="Images per micro-step.")
    grad_accum: int | None = Field(None, ge=1, le=1024)
    lr: float | None = Field(None, gt=0, le=1.0, description="Learning rate (recipe default if unset).")
    timestep_draws: int | None = Field(None, ge=1, le=16)
    checkpoint_every: int | None = Field(None, ge=1, le=1_000_000)
    projector_warmup_steps: int | None = Field(None, ge=0, le=1_000_000)
    crop_size: int | None = Field(None, ge=8, le=4096)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    def overrides(self) -> dict[str, Any]:
        """Dotted recipe overrides (``lr`` lives under ``optim``)."""
        values = self.model_dump(exclude_none=True)
        if "lr" in values:
            values["optim.lr"] = values.pop("lr")
        return values


def overrides_of(params: dict[str, Any]) -> dict[str, Any]:
    """A stored job's ``params`` column -> recipe overrides (validated again: rows outlive code)."""
    return JobParams.model_validate(params).overrides()


def _checked(kind: str, value: str) -> str:
    try:
        return check_model_id(value)
    except InvalidModelId as exc:
        raise JobSetupError(f"{kind}: {exc}") from None


def resolve_base_model(model_id: str, settings: Settings) -> ModelArtifact:
    """A registry id -> its :class:`ModelArtifact` (the catalog's roots and precedence)."""
    _checked("base_model", model_id)
    try:
        return catalog.find_model(model_id, settings)
    except catalog.ModelNotFound as exc:
        raise JobSetupError(f"base_model: {exc}") from None


def resolve_diffusion(model_id: str, settings: Settings) -> Path:
    _checked("diffusion", model_id)
    try:
        return catalog.find_diffusion(model_id, settings)
    except catalog.ModelNotFound as exc:
        raise JobSetupError(str(exc)) from None


def resolve_recipe(recipe: str, diffusion: str, settings: Settings) -> Path:
    """A recipe name -> its YAML file: ``<home>/recipes/`` (a site's own), then the presets.

    Against a lab diffusion model ``lab-<name>`` is tried first, so ``recipe: diva`` picks the
    lab-sized variant of DIVA there and the full-size one on SD-2.1.
    """
    from trainer.recipes import PRESETS_DIR

    _checked("recipe", recipe)
    names = [f"lab-{recipe}", recipe] if diffusion.startswith("lab-") else [recipe]
    folders = [settings.recipes_dir, PRESETS_DIR]
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
    """The validated TrainConfig for one job (raises :class:`JobSetupError` with the reason).

    The retention policy's ``DIVA_JOB_KEEP_CHECKPOINTS`` wins over the recipe: how much disk a
    job may hold is the site's decision, not the recipe author's.
    """
    from trainer.recipes import RecipeError, load_train_config

    preset = resolve_recipe(recipe, diffusion, settings)
    fixed = {
        "model": str(base_model_dir),
        "pretrained": None,
        "diffusion": str(resolve_diffusion(diffusion, settings)),
        "data.path": str(dataset_dir),
        "data.kind": "folder",
        "output_dir": str(settings.job_run_dir(job_id)),
        "device": settings.device,
        "keep_checkpoints": settings.job_keep_checkpoints,
    }
    try:
        return load_train_config(preset, {**overrides, **fixed})
    except RecipeError as exc:
        raise JobSetupError(str(exc)) from None
