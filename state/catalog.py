"""The model catalog: one resolver from a model id to its folder, for registry, worker and CLI.

Encoders live in two roots, searched in order (earlier wins on id): the built-in lab models
shipped in the package (``trainer/lab/builtin``) and the registry folder ``<home>/models`` that
every published job lands in. Diffusion models live in ``<home>/diffusion`` and then the
built-ins. Ids are checked by :func:`trainer.artifacts.check_model_id` before they touch a path,
so no id can walk out of a root.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from state.settings import Settings
from trainer.artifacts import BUILTIN_MODELS_DIR, ModelArtifact, check_model_id, list_artifacts


class ModelNotFound(LookupError):
    """No model with this id; the message lists the ids that exist."""


def model_roots(settings: Settings) -> list[Path]:
    """Encoder roots in lookup order: built-ins first (they cannot be shadowed), then the registry."""
    return [BUILTIN_MODELS_DIR, settings.models_dir]


def is_builtin(artifact: ModelArtifact) -> bool:
    return artifact.root.resolve().parent == BUILTIN_MODELS_DIR.resolve()


def artifacts(settings: Settings) -> dict[str, ModelArtifact]:
    """Every encoder folder with a manifest, by id (published or not: callers filter)."""
    return {a.id: a for a in list_artifacts(*model_roots(settings))}


def find_model(model_id: str, settings: Settings) -> ModelArtifact:
    """The folder of encoder ``model_id``; :class:`ModelNotFound` (listing the ids) otherwise."""
    check_model_id(model_id)
    found = artifacts(settings)
    if model_id not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ModelNotFound(f"unknown model {model_id!r}; available: {known}")
    return found[model_id]


def find_diffusion(model_id: str, settings: Settings) -> Path:
    """A diffusion id -> its diffusers folder: ``<home>/diffusion/<id>``, then the built-ins."""
    check_model_id(model_id)
    candidates = [settings.diffusion_dir / model_id, BUILTIN_MODELS_DIR / model_id]
    for folder in candidates:
        if (folder / "model_index.json").is_file() or (folder / "unet").is_dir():
            return folder.resolve()
    raise ModelNotFound(
        f"unknown diffusion model {model_id!r}: looked in {', '.join(str(c) for c in candidates)}"
    )


class ModelNotDeletable(ValueError):
    """Built-in and configured models are part of the install, not of the registry."""


def delete_model(model_id: str, settings: Settings) -> Path:
    """Remove a published (or gated) model folder and its cached exports; returns the folder.

    The folder is renamed away first, so the registry (which rescans on lookup) never serves
    half of it.
    """
    artifact = find_model(model_id, settings)
    if is_builtin(artifact):
        raise ModelNotDeletable(f"model {model_id!r} is built in; it cannot be deleted")
    trash = settings.models_dir / f".deleted-{model_id}-{uuid.uuid4().hex[:8]}"
    artifact.root.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(settings.exports_dir / model_id, ignore_errors=True)
    return artifact.root
