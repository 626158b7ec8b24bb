"""Zero-shot classification (top-1 / top-5) on an ImageFolder-style dataset.

``<data>/<class folder>/<image>``; class names are the folder names (``_`` read as a space)
unless a JSON map gives them: ``<data>/classnames.json`` or an explicit file, either
``{"folder": "class name", ...}`` or a list in sorted-folder order. Each class is the normalised
mean of its prompt-template embeddings (the CLIP paper's ensemble); templates are strings with
``{}`` (or ``{c}``) where the class name goes: given by the caller, else the dataset's own
``<data>/templates.txt``, else :data:`DEFAULT_TEMPLATES` (ImageNet-style photo prompts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.eval.encode import Progress, read_rgb, running_total

CLASSNAMES_FILE = "classnames.json"
TEMPLATES_FILE = "templates.txt"
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a bad photo of the {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a rendering of a {}.",
    "a drawing of a {}.",
    "itap of a {}.",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class ZeroShotDataError(ValueError):
    """The dataset folder, class map or templates are unusable; the message says which."""


@dataclass
class ZeroShotResult:
    top1: float
    top5: float
    num_images: int
    num_classes: int
    per_class: dict[str, float] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)
    model: str = ""
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": "zeroshot", **asdict(self)}

    def save(self, out_dir: Path | str, name: str = "zeroshot.json") -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> ZeroShotResult:
        data = json.loads(Path(path).read_text())
        data.pop("benchmark", None)
        return cls(**data)


def dataset_templates(data_dir: Path | str) -> list[str] | None:
    """Templates a dataset carries itself (``<data>/templates.txt``, one per line), if any."""
    path = Path(data_dir) / TEMPLATES_FILE
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def format_template(template: str, classname: str) -> str:
    return template.replace("{c}", classname).replace("{}", classname)


def check_templates(templates: Sequence[str]) -> list[str]:
    templates = [t for t in templates if t.strip()]
    if not templates:
        raise ZeroShotDataError("no prompt templates given")
    bad = [t for t in templates if "{}" not in t and "{c}" not in t]
    if bad:
        raise ZeroShotDataError(f"templates without a '{{}}' placeholder for the class name: {bad}")
    return templates


def read_image_folder(
    data_dir: Path | str, classnames: Path | str | dict | list | None = None
) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (in label order) and ``(path, label)`` samples of an ImageFolder tree."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ZeroShotDataError(f"dataset folder not found: {data_dir}")
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ZeroShotDataError(f"no class folders in {data_dir} (expected <data>/<class>/<image>)")
    names = _class_names(data_dir, folders, classnames)
    samples = [
        (path, label)
        for label, folder in enumerate(folders)
        for path in sorted((data_dir / folder).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not samples:
        raise ZeroShotDataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders of {data_dir}")
    return names, samples


def _class_names(data_dir: Path, folders: list[str], source) -> list[str]:
    if source is None and (data_dir / CLASSNAMES_FILE).is_file():
        source = data_dir / CLASSNAMES_FILE
    if source is None:
        return [folder.replace("_", " ") for folder in folders]
    if isinstance(source, (str, Path)):
        try:
            source = json.loads(Path(source).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ZeroShotDataError(f"cannot read class-name map {source}: {error}") from error
    if isinstance(source, list):
        if len(source) != len(folders):
            raise ZeroShotDataError(
                f"class-name list has {len(source)} names for {len(folders)} class folders"
            )
        return [str(name) for name in source]
    if isinstance(source, dict):
        missing = [folder for folder in folders if folder not in source]
        if missing:
            raise ZeroShotDataError(f"class-name map lacks folders {missing[:10]}")
        return [str(source[folder]) for folder in folders]
    raise ZeroShotDataError("class-name map must be a JSON object {folder: name} or a list of names")


def evaluate_zeroshot(
    bundle: Any,
    data_dir: Path | str,
    *,
    templates: Sequence[str] | None = None,
    classnames: Path | str | dict | list | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ZeroShotResult:
    """Top-1 / top-5 accuracy (points, 0..100) of prompt-ensemble zero-shot classification."""
    import torch

    from trainer.eval.encode import FeatureEncoder

    templates = check_templates(list(templates or dataset_templates(data_dir) or DEFAULT_TEMPLATES))
    names, samples = read_image_folder(data_dir, classnames)
    encoder = FeatureEncoder(bundle, device=device, batch_size=batch_size)
    advance = running_total(progress, len(samples) + len(names) * len(templates))
    prompts = [format_template(t, name) for name in names for t in templates]
    text = encoder.texts(prompts, progress=advance).reshape(len(names), len(templates), -1).mean(dim=1)
    weights = torch.nn.functional.normalize(text, dim=-1)
    images = encoder.images([path for path, _ in samples], loader=read_rgb, progress=advance)
    scores = (images @ weights.T).numpy()
    labels = np.array([label for _, label in samples])
    top1, top5, hits1 = topk_accuracy(scores, labels)
    per_class = {names[c]: 100.0 * float(hits1[labels == c].mean()) for c in np.unique(labels)}
    return ZeroShotResult(
        top1=top1,
        top5=top5,
        num_images=len(samples),
        num_classes=len(names),
        per_class=per_class,
        templates=templates,
        model=str(getattr(bundle, "source", "") or ""),
        data=str(data_dir),
    )


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> tuple[float, float, np.ndarray]:
    """Top-1 and top-k accuracy in points; ties are broken by class order (stable sort)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits1 = order[:, 0] == labels
    hitsk = (order[:, : min(k, scores.shape[1])] == labels[:, None]).any(axis=1)
    return 100.0 * float(hits1.mean()), 100.0 * float(hitsk.mean()), hits1
