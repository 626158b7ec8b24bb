"""The model registry's artefact layout: one folder per model version.

This module is the single owner of the layout (DESIGN.md "Artefact layout"). The trainer and the
lab write it, the worker publishes into it, the service reads it, export fills its sub-folders.

    <root>/<model_id>/
        manifest.json               ModelManifest below
        open_clip/                  open_clip_config.json + open_clip_model.safetensors
        hf/                         CLIPModel / SiglipModel folder
        onnx/                       visual.onnx, textual.onnx, preprocess.json
        triton/                     optional Triton model repository entry
        report/                     evaluation JSON + PNG charts + summary.md
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
BUILTIN_MODELS_DIR = Path(__file__).resolve().parent / "lab" / "builtin"


class InvalidModelId(ValueError):
    """A model id that could escape the registry folder or is otherwise malformed."""


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is a safe folder name, else raise :class:`InvalidModelId`."""
    if not MODEL_ID_PATTERN.match(model_id) or ".." in model_id:
        raise InvalidModelId(
            f"invalid model id {model_id!r}: use lowercase letters, digits, '.', '_' and '-' "
            "(at most 128 characters, no '..')"
        )
    return model_id


class ModelManifest(BaseModel):
    """What a model version is: enough to load, preprocess, serve, export and trace it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    id: str
    architecture: str = Field(description="open_clip model config name, e.g. 'ViT-L-14'.")
    base: str | None = Field(None, description="Model id (or open_clip name:tag) it was trained from.")
    recipe: str | None = None
    job: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    embed_dim: int
    image_size: int
    patch_size: int | None = None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    context_length: int = 77
    feature_layer: int = Field(-2, description="Hidden layer MLLMs read (LLaVA: -2).")
    checksums: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    eval: dict[str, Any] = Field(default_factory=dict, description="Evaluation results by name.")
    lineage: list[str] = Field(default_factory=list, description="Ancestor ids, oldest first.")
    description: str = ""
    published: bool = True
    owner: str | None = Field(
        None, description="Opaque owner tag (the service's key digest); None: public to every caller."
    )


class ModelArtifact:
    """Paths inside one model folder. Creating one touches nothing on disk."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @classmethod
    def in_registry(cls, registry_root: Path | str, model_id: str) -> ModelArtifact:
        return cls(Path(registry_root) / check_model_id(model_id))

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def open_clip_dir(self) -> Path:
        return self.root / "open_clip"

    @property
    def hf_dir(self) -> Path:
        return self.root / "hf"

    @property
    def onnx_dir(self) -> Path:
        return self.root / "onnx"

    @property
    def triton_dir(self) -> Path:
        return self.root / "triton"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> ModelManifest:
        return ModelManifest.model_validate_json(self.manifest_path.read_text())

    def write_manifest(self, manifest: ModelManifest, *, checksum: bool = True) -> ModelManifest:
        """Write ``manifest.json`` atomically; with ``checksum`` record sha256 of every weight file."""
        if checksum:
            manifest = manifest.model_copy(update={"checksums": self.compute_checksums()})
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
        tmp.replace(self.manifest_path)
        return manifest

    def compute_checksums(self) -> dict[str, str]:
        sums: dict[str, str] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.suffix in {".safetensors", ".onnx", ".bin", ".data"}:
                sums[path.relative_to(self.root).as_posix()] = sha256_file(path)
        return sums


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def list_artifacts(*roots: Path | str) -> list[ModelArtifact]:
    """Every model folder with a manifest under the given registry roots; earlier roots win on id."""
    seen: dict[str, ModelArtifact] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            artifact = ModelArtifact(child)
            if artifact.exists() and artifact.id not in seen:
                seen[artifact.id] = artifact
    return list(seen.values())
