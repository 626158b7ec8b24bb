"""One entry point that returns a CLIP *with* its preprocessing and tokenizer.

A model is an open_clip config (JSON), never a subclass. Sources, parsed in one place:

* ``"ViT-L-14"`` + ``pretrained="openai"`` (a tag from open_clip's table, resolved from the local
  hub cache) or ``pretrained="/path/weights.safetensors"``;
* ``"local-dir:/path"`` or a plain path to a folder holding ``open_clip_config.json`` (+ weights):
  the format :func:`save_open_clip` writes and that every registry model carries;
* ``"hf-hub:org/repo"`` (open_clip's own scheme, from the local hub cache when offline).

The project's own configs (tiny test towers, the lab CLIP) live in ``configs/*.json`` and are
registered with open_clip once, so open_clip's factory builds them like any other model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from safetensors.torch import save_file

from trainer.artifacts import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS, ModelArtifact, ModelManifest

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class UnknownBackboneError(ValueError):
    """The named architecture, tag or folder does not exist; the message lists valid choices."""


@lru_cache(maxsize=1)
def _register_project_configs() -> None:
    open_clip.add_model_config(CONFIG_DIR)


def list_architectures() -> list[str]:
    """All architecture names open_clip can build here, the project's own configs included."""
    _register_project_configs()
    return list(open_clip.list_models())


@dataclass
class ClipBundle:
    """A CLIP plus everything needed to feed it and to save it again losslessly."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    architecture: str
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg["size"]
        return int(size if isinstance(size, int) else size[0])

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.preprocess_cfg["mean"])  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.preprocess_cfg["std"])  # type: ignore[return-value]

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def context_length(self) -> int:
        return int(self.model_cfg.get("text_cfg", {}).get("context_length", 77))


def _folder_of(source: str) -> Path | None:
    if source.startswith("local-dir:"):
        return Path(source[len("local-dir:") :])
    path = Path(source)
    if path.is_dir() and (path / OPEN_CLIP_CONFIG).is_file():
        return path
    if path.is_dir() and (path / "open_clip" / OPEN_CLIP_CONFIG).is_file():
        return path / "open_clip"
    return None


def create_clip(
    source: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    **model_kwargs: Any,
) -> ClipBundle:
    """Build a CLIP from an architecture name (+ tag or weights path) or an open_clip folder.

    ``model_kwargs`` go to ``open_clip.create_model`` (e.g. ``force_image_size``). Weights that
    are neither a tag nor a file, and names open_clip does not know, raise
    :class:`UnknownBackboneError` naming the choices instead of open_clip's bare ``RuntimeError``.
    """
    _register_project_configs()
    folder = _folder_of(source)
    if folder is not None:
        config_path = folder / OPEN_CLIP_CONFIG
        if not config_path.is_file():
            raise UnknownBackboneError(f"no {OPEN_CLIP_CONFIG} in model folder {folder}")
        config = json.loads(config_path.read_text())
        model_cfg = config["model_cfg"]
        architecture = config.get("architecture") or config.get("model_name") or folder.name
        preprocess_cfg = merge_preprocess_dict(_default_preprocess(), config.get("preprocess_cfg", {}))
        open_clip_name = f"local-dir:{folder}"
        pretrained = None
    elif source.startswith("hf-hub:"):
        open_clip_name, architecture = source, source
        model_cfg = open_clip.get_model_config(source) or {}
        preprocess_cfg = {}
    else:
        if source not in open_clip.list_models():
            raise UnknownBackboneError(
                f"unknown backbone {source!r}; choose an open_clip architecture "
                f"({', '.join(list_architectures()[:12])}, ...; see `diva models architectures`), "
                "an open_clip folder, or 'hf-hub:org/repo'"
            )
        if pretrained and not Path(pretrained).is_file():
            tags = open_clip.list_pretrained_tags_by_model(source)
            if pretrained not in tags:
                raise UnknownBackboneError(
                    f"unknown pretrained weights {pretrained!r} for {source}: give a file path or one of "
                    f"{tags or 'no published tags'}"
                )
        open_clip_name, architecture = source, source
        model_cfg = open_clip.get_model_config(source)
        preprocess_cfg = {}

    model_cfg = _with_forced(model_cfg, model_kwargs)
    model, _, preprocess = open_clip.create_model_and_transforms(
        open_clip_name, pretrained=pretrained, device=device, precision=precision, **model_kwargs
    )
    if not preprocess_cfg:
        visual = model.visual
        preprocess_cfg = merge_preprocess_dict(
            _default_preprocess(),
            {
                "size": getattr(visual, "image_size", (224, 224)),
                "mean": getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN,
                "std": getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD,
                **(getattr(visual, "preprocess_cfg", None) or {}),
            },
        )
    preprocess_cfg["size"] = _as_size(preprocess_cfg["size"])
    tokenizer = open_clip.get_tokenizer(open_clip_name)
    model.eval()
    return ClipBundle(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        architecture=architecture,
        model_cfg=dict(model_cfg),
        preprocess_cfg=dict(preprocess_cfg),
        source=source if pretrained is None else f"{source}:{pretrained}",
    )


def _with_forced(model_cfg: dict[str, Any], model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Record ``force_*`` overrides in the stored config, so the saved model reloads identically.

    open_clip applies ``force_image_size``/``force_quick_gelu`` to the model it builds but not to
    ``get_model_config``'s answer; without this, a ViT-L-14 @336 would be saved as a 224 model.
    """
    import copy

    cfg = copy.deepcopy(model_cfg)
    if model_kwargs.get("force_quick_gelu"):
        cfg["quick_gelu"] = True
    if model_kwargs.get("force_image_size") is not None:
        cfg["vision_cfg"] = {**cfg.get("vision_cfg", {}), "image_size": model_kwargs["force_image_size"]}
    return cfg


def eval_transform(preprocess_cfg: dict[str, Any]) -> Callable[[Any], torch.Tensor]:
    """The inference transform for a stored preprocess config (same code path as open_clip's)."""
    return image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False)


def save_open_clip(
    bundle: ClipBundle, folder: Path | str, *, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``open_clip_config.json`` + ``open_clip_model.safetensors`` (the whole CLIP).

    ``open_clip.create_model_and_transforms("local-dir:<folder>")`` and :func:`create_clip`
    load it back; the config carries the full architecture, so no name-keyed behaviour applies.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = state_dict if state_dict is not None else bundle.model.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, str(folder / OPEN_CLIP_WEIGHTS))
    config = {
        "architecture": bundle.architecture,
        "model_cfg": bundle.model_cfg,
        "preprocess_cfg": _jsonable(bundle.preprocess_cfg),
    }
    (folder / OPEN_CLIP_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    if hasattr(bundle.tokenizer, "save_pretrained"):
        # open_clip's HFTokenizer (lab word-level, SigLIP, ...) loads from the model folder itself.
        bundle.tokenizer.save_pretrained(str(folder))
    return folder


def manifest_for(bundle: ClipBundle, model_id: str, **fields: Any) -> ModelManifest:
    """A :class:`ModelManifest` whose shape fields (architecture, sizes, normalisation) are the
    bundle's; ``fields`` give the rest (``patch_size``, ``base``, ``recipe``, ``eval``, ...)."""
    return ModelManifest(
        id=model_id,
        architecture=bundle.architecture,
        embed_dim=bundle.embed_dim,
        image_size=bundle.image_size,
        mean=bundle.mean,
        std=bundle.std,
        context_length=bundle.context_length,
        **fields,
    )


def write_model_folder(
    bundle: ClipBundle,
    registry_root: Path | str,
    model_id: str,
    *,
    checksum: bool = True,
    **fields: Any,
) -> ModelArtifact:
    """Write ``<registry_root>/<model_id>/`` (``open_clip/`` + ``manifest.json``) from ``bundle``.

    ``fields`` go to :func:`manifest_for`; ``checksum`` to :meth:`ModelArtifact.write_manifest`.
    """
    artifact = ModelArtifact.in_registry(registry_root, model_id)
    save_open_clip(bundle, artifact.open_clip_dir)
    artifact.write_manifest(manifest_for(bundle, model_id, **fields), checksum=checksum)
    return artifact


def _default_preprocess() -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(PreprocessCfg())


def _as_size(size: Any) -> int | tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return int(size[0]) if len(size) == 2 and size[0] == size[1] else tuple(int(s) for s in size)
    return int(size)


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
