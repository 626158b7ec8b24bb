"""Image-text retrieval recall@k on a list of (image, caption) pairs in CSV or JSONL.

CSV (``.tsv``: tab-separated, as open_clip's training lists): a header with ``image`` and
``caption`` columns (open_clip's ``filepath``/``title`` also work). JSONL: one object per line
with ``image`` and ``caption`` (a string or a list of strings). Image paths are relative to the
file unless absolute. An image may have several captions: image->text counts a hit when *any*
of its captions is in the top k.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.eval.encode import Progress, read_rgb, running_total

IMAGE_KEYS = ("image", "filepath")
CAPTION_KEYS = ("caption", "title")


class RetrievalDataError(ValueError):
    """The pairs file is unusable; the message names the file and line."""


@dataclass
class RetrievalResult:
    image_to_text: dict[str, float]
    text_to_image: dict[str, float]
    num_images: int
    num_texts: int
    model: str = ""
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": "retrieval", **asdict(self)}


def read_pairs(path: Path | str) -> tuple[list[Path], list[str], list[int]]:
    """Unique images, all captions, and for each caption the index of its image."""
    path = Path(path)
    if not path.is_file():
        raise RetrievalDataError(f"pairs file not found: {path}")
    records = _read_jsonl(path) if path.suffix.lower() in {".jsonl", ".json"} else _read_csv(path)
    images: dict[Path, int] = {}
    captions: list[str] = []
    owner: list[int] = []
    for line, image, texts in records:
        image_path = Path(image) if Path(image).is_absolute() else path.parent / image
        if not image_path.is_file():
            raise RetrievalDataError(f"{path}: line {line}: image not found: {image_path}")
        index = images.setdefault(image_path, len(images))
        for text in texts:
            captions.append(text)
            owner.append(index)
    if not captions:
        raise RetrievalDataError(f"{path}: no (image, caption) pairs")
    return list(images), captions, owner


def _pick(keys: Sequence[str], choices: Sequence[str], where: str) -> str:
    for choice in choices:
        if choice in keys:
            return choice
    raise RetrievalDataError(f"{where}: needs one of the columns {list(choices)}, found {list(keys)}")


def _read_csv(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        fields = reader.fieldnames or []
        image_key = _pick(fields, IMAGE_KEYS, str(path))
        caption_key = _pick(fields, CAPTION_KEYS, str(path))
        for record in reader:
            image, caption = (record.get(image_key) or "").strip(), (record.get(caption_key) or "").strip()
            if not image or not caption:
                raise RetrievalDataError(f"{path}: line {reader.line_num}: empty image or caption")
            yield reader.line_num, image, [caption]


def _read_jsonl(path: Path):
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise RetrievalDataError(f"{path}: line {line}: not JSON ({error})") from error
        if not isinstance(record, dict):
            raise RetrievalDataError(f"{path}: line {line}: expected a JSON object")
        image_key = _pick(list(record), IMAGE_KEYS, f"{path}: line {line}")
        caption_key = _pick(list(record), CAPTION_KEYS, f"{path}: line {line}")
        captions = record[caption_key]
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            raise RetrievalDataError(
                f"{path}: line {line}: caption must be a non-empty string or a list of them"
            )
        yield line, str(record[image_key]), captions


def recall_at_k(
    scores: np.ndarray, owner: Sequence[int], ks: Sequence[int]
) -> tuple[dict[str, float], dict[str, float]]:
    """Recall@k (points) from ``scores[image, text]`` and each text's image index."""
    owner = np.asarray(owner)
    num_images, num_texts = scores.shape
    positive = np.zeros_like(scores, dtype=bool)
    positive[owner, np.arange(num_texts)] = True
    text_rank = np.argsort(-scores, axis=1, kind="stable")  # per image: texts best first
    image_rank = np.argsort(-scores.T, axis=1, kind="stable")  # per text: images best first
    i2t, t2i = {}, {}
    for k in ks:
        top_texts = text_rank[:, : min(k, num_texts)]
        i2t[f"R@{k}"] = 100.0 * float(np.take_along_axis(positive, top_texts, axis=1).any(axis=1).mean())
        top_images = image_rank[:, : min(k, num_images)]
        t2i[f"R@{k}"] = 100.0 * float((top_images == owner[:, None]).any(axis=1).mean())
    return i2t, t2i


def evaluate_retrieval(
    bundle: Any,
    pairs_file: Path | str,
    *,
    ks: Sequence[int] = (1, 5, 10),
    device: str = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> RetrievalResult:
    from trainer.eval.encode import FeatureEncoder

    images, captions, owner = read_pairs(pairs_file)
    encoder = FeatureEncoder(bundle, device=device, batch_size=batch_size)
    advance = running_total(progress, len(images) + len(captions))
    image_features = encoder.images(images, loader=read_rgb, progress=advance)
    text_features = encoder.texts(captions, progress=advance)
    i2t, t2i = recall_at_k((image_features @ text_features.T).numpy(), owner, ks)
    return RetrievalResult(
        image_to_text=i2t,
        text_to_image=t2i,
        num_images=len(images),
        num_texts=len(captions),
        model=str(getattr(bundle, "source", "") or ""),
        data=str(pairs_file),
    )
