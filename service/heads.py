"""Few-shot heads on the serving path: examples -> features through the engine, a head fitted,
stored and read back per request.

Images go through the engine's own decode/preprocess/encode path (the service's image limits,
the model's own preprocessing), in chunks of ``max_inputs`` so 10,000 examples never sit in
memory as pixels at once nor overflow a batcher queue. Images of any size are accepted: the
model's preprocessing resizes each one, as it does for ``/v1/embeddings``. Fitting itself is
numpy (``trainer.heads``) run off the event loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from service.core.errors import ApiError
from service.inference.engine import InferenceEngine, l2_normalize
from service.inference.registry import LoadedModel
from service.schemas.classify import DEFAULT_TEMPLATES
from service.schemas.heads import FitHeadRequest
from state.datasets import DatasetNotFound, DatasetStore
from state.heads import HeadNotFound, HeadRecord, HeadStore
from state.owners import Viewer
from state.settings import Settings
from trainer.heads import Head, HeadFitError, fit_head


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "invalid_request_error", message)


def dataset_examples(settings: Settings, dataset_id: str, viewer: Viewer) -> list[tuple[bytes, str]]:
    """(bytes, class) of an uploaded dataset, the class being each image's parent folder."""
    store = DatasetStore(settings.datasets_dir)
    try:
        manifest = store.get(dataset_id, viewer)
    except DatasetNotFound as exc:
        raise ApiError.not_found(str(exc)) from None
    examples, flat = [], []
    for image in sorted(manifest.images, key=lambda image: image.name):
        label = PurePosixPath(image.name).parent.name
        if not label:
            flat.append(image.name)
            continue
        examples.append(((store.folder(dataset_id) / image.file).read_bytes(), label))
    if flat:
        raise unprocessable(
            f"dataset {dataset_id} is not in folder-per-class layout (<class>/<image>): "
            f"{len(flat)} images have no folder, e.g. {flat[0]!r}"
        )
    return examples


def take_shots(labels: list[str], shots: int | None) -> list[int]:
    """Indices of the first ``shots`` examples of each label (all when None); 422 if one has fewer."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    if shots is None:
        return list(range(len(labels)))
    short = {label: len(rows) for label, rows in by_label.items() if len(rows) < shots}
    if short:
        listed = ", ".join(f"{label!r} has {count}" for label, count in list(short.items())[:5])
        raise unprocessable(f"shots={shots} per label asked for, but {listed}")
    return sorted(i for rows in by_label.values() for i in rows[:shots])


async def encode(engine: InferenceEngine, model: LoadedModel, blobs: list[bytes]) -> np.ndarray:
    """Unit image features [N, D], decoded and encoded chunk by chunk (errors name the example)."""
    step = engine.settings.max_inputs
    parts = []
    for start in range(0, len(blobs), step):
        chunk = list(enumerate(blobs[start : start + step], start))
        parts.append(await engine.encode_images(model, await engine.preprocess_images(model, chunk)))
    return l2_normalize(np.concatenate(parts)).astype(np.float32)


async def fit(
    engine: InferenceEngine, model: LoadedModel, examples: list[tuple[bytes, str]], body: FitHeadRequest
) -> Head:
    """A head for ``model`` from (bytes, label) examples; 4xx for anything a client can fix."""
    labels = [label for _, label in examples]
    if len(set(labels)) < 2:
        raise unprocessable(f"a head needs at least two labels; got {sorted(set(labels))}")
    keep = take_shots(labels, body.shots)
    labels = [labels[i] for i in keep]
    order = list(dict.fromkeys(labels))
    templates = body.templates or list(DEFAULT_TEMPLATES)
    if body.text_weight and len(order) * len(templates) > engine.settings.max_label_prompts:
        raise unprocessable(
            f"too many label prompts (labels x templates): {len(order) * len(templates)}; "
            f"the limit is {engine.settings.max_label_prompts} (or set text_weight 0)"
        )
    features = await encode(engine, model, [examples[i][0] for i in keep])
    text = await engine.label_embeddings(model, order, templates) if body.text_weight else None
    try:
        return await asyncio.to_thread(
            fit_head,
            features,
            labels,
            kind=body.kind,
            text=text,
            text_weight=body.text_weight,
            logit_scale=float(model.runtime.logit_scale),
            label_order=order,
            model=model.id,
            templates=templates if body.text_weight else [],
        )
    except HeadFitError as exc:
        raise unprocessable(str(exc)) from None


def head_store(settings: Settings) -> HeadStore:
    return HeadStore(settings.heads_dir)


def get_record(settings: Settings, head_id: str, viewer: Viewer) -> HeadRecord:
    try:
        return head_store(settings).get(head_id, viewer)
    except HeadNotFound as exc:
        raise ApiError(404, "head_not_found", str(exc)) from None


def load_head(settings: Settings, head_id: str, viewer: Viewer) -> tuple[HeadRecord, Head]:
    """The head if ``viewer`` may use it (404 otherwise); tensors cached while the files are unchanged."""
    record = get_record(settings, head_id, viewer)
    folder = head_store(settings).folder(head_id)
    try:
        return record, _read(str(folder), (folder / "tensors.safetensors").stat().st_mtime_ns)
    except OSError:  # deleted between the two reads
        raise ApiError(404, "head_not_found", f"no head {head_id!r}") from None


@lru_cache(maxsize=32)
def _read(folder: str, _mtime_ns: int) -> Head:
    return Head.from_pretrained(Path(folder))
