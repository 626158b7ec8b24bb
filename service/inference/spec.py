"""What the registry knows of one model before loading it, and the error a runtime raises.

Its own module so that the runtimes (ONNX Runtime, Triton) and the registry that builds them
both import it, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.artifacts import ModelArtifact, ModelManifest


def serving_cpu_threads(threads: int) -> int:
    """The intra-op threads a CPU runtime (PyTorch or ONNX Runtime) gets; 0 = half the usable cores.

    Why: by default both take every core, and their barriers then wait on threads the OS has given
    to the event loop or the decoders. On a busy 2-core machine that made a small ViT 10-100x
    slower than with one thread (measured: 0.4-4 vs 120 images/s at batch 1).
    """
    import os

    if threads > 0:
        return threads
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, usable // 2)


class RuntimeUnavailable(ValueError):
    """The runtime is unknown, or the model lacks the files that runtime needs."""


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from; cheap to build (reads a manifest at most)."""

    id: str
    source: str
    pretrained: str | None = None
    artifact: ModelArtifact | None = None
    manifest: ModelManifest | None = None
    version: int = 0  # manifest mtime (ns): a rewrite means a new version

    @property
    def owner(self) -> str | None:
        """Owner digest of a trained model; None (public) for built-in and configured models."""
        return self.manifest.owner if self.manifest is not None else None

    def describe(self) -> dict[str, Any]:
        """Public facts for ``/v1/models``: base, recipe, dims, image size, eval, lineage."""
        info: dict[str, Any] = {"id": self.id, "source": "registry" if self.artifact else "config"}
        if self.manifest is not None:
            m = self.manifest
            info.update(
                architecture=m.architecture,
                base=m.base,
                recipe=m.recipe,
                job=m.job,
                created=m.created,
                embed_dim=m.embed_dim,
                image_size=m.image_size,
                patch_size=m.patch_size,
                context_length=m.context_length,
                eval=m.eval,
                lineage=m.lineage,
                description=m.description,
            )
        else:
            info.update(architecture=self.source, pretrained=self.pretrained)
        if self.artifact is not None:
            info["formats"] = [
                name
                for name, folder in (
                    ("open_clip", self.artifact.open_clip_dir),
                    ("hf", self.artifact.hf_dir),
                    ("onnx", self.artifact.onnx_dir),
                    ("triton", self.artifact.triton_dir),
                )
                if folder.is_dir()
            ]
        return info
