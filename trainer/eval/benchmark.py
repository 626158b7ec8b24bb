"""Run a dataset of the ``clip-benchmark`` package (optional extra ``diva-serve[benchmarks]``).

Users who keep clip_benchmark datasets locally get its loaders, class names and templates instead
of a re-implementation. The scoring is this package's own (the same prompt ensemble and top-k /
recall@k code as :mod:`trainer.eval.zeroshot` and :mod:`trainer.eval.retrieval`): numbers stay
comparable with the rest of the reports, and clip_benchmark 1.6's own ``accuracy`` breaks under
numpy 2. Nothing is downloaded (``download=False``): the data must be under ``root`` already.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'diva-serve[benchmarks]' (the clip-benchmark package)"
TASKS = ("zeroshot_classification", "zeroshot_retrieval")


class ClipBenchmarkMissing(ImportError):
    """clip_benchmark is an optional extra; the message says how to install it."""


def evaluate_clip_benchmark(
    bundle: Any,
    dataset: str,
    root: Path | str,
    *,
    task: str | None = None,
    split: str = "test",
    device: str = "cpu",
    batch_size: int = 64,
    recall_k: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """Metrics in points: ``top1``/``top5`` (classification) or ``image_to_text_R@k``/... (retrieval)."""
    try:
        from clip_benchmark.datasets.builder import (
            build_dataset,
            get_dataset_collate_fn,
            get_dataset_default_task,
        )
    except ImportError as error:
        raise ClipBenchmarkMissing(f"clip_benchmark is not installed: {INSTALL_HINT} ({error})") from error
    import torch

    from trainer.eval.encode import FeatureEncoder

    task = task or get_dataset_default_task(dataset)
    if task not in TASKS:
        raise ValueError(f"clip_benchmark task {task!r} is not supported here; choose one of {TASKS}")
    data = build_dataset(
        dataset, root=str(root), transform=bundle.preprocess, split=split, download=False, task=task
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=get_dataset_collate_fn(dataset)
    )
    encoder = FeatureEncoder(bundle, device=device, batch_size=batch_size)
    if task == "zeroshot_classification":
        return _classification(encoder, loader, list(data.classes), data.templates)
    return _retrieval(encoder, loader, recall_k)


def _classification(encoder: Any, loader: Any, classes: list[str], templates: Any) -> dict[str, float]:
    import numpy as np
    import torch

    from trainer.eval.zeroshot import format_template, topk_accuracy

    weights = []
    for name in classes:
        # clip_benchmark templates: a list of format strings, or per-class prompt lists (CuPL).
        prompts = (
            templates[name] if isinstance(templates, dict) else [format_template(t, name) for t in templates]
        )
        weights.append(encoder.texts(prompts).mean(dim=0))
    classifier = torch.nn.functional.normalize(torch.stack(weights), dim=-1)
    features, labels = [], []
    for pixels, target in loader:
        features.append(encoder.pixels(pixels))
        labels.append(torch.as_tensor(target))
    scores = (torch.cat(features) @ classifier.T).numpy()
    top1, top5, _ = topk_accuracy(scores, np.asarray(torch.cat(labels)))
    return {"top1": top1, "top5": top5, "num_images": float(len(scores)), "num_classes": float(len(classes))}


def _retrieval(encoder: Any, loader: Any, recall_k: tuple[int, ...]) -> dict[str, float]:
    import torch

    from trainer.eval.retrieval import recall_at_k

    image_features, text_features, owner = [], [], []
    seen = 0
    for pixels, captions in loader:
        image_features.append(encoder.pixels(pixels))
        texts = [text for group in captions for text in group]
        text_features.append(encoder.texts(texts))
        owner += [seen + i for i, group in enumerate(captions) for _ in group]
        seen += len(captions)
    scores = (torch.cat(image_features) @ torch.cat(text_features).T).numpy()
    i2t, t2i = recall_at_k(scores, owner, recall_k)
    return {
        **{f"image_to_text_{k}": v for k, v in i2t.items()},
        **{f"text_to_image_{k}": v for k, v in t2i.items()},
    }
