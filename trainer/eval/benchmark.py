"""Run a dataset of the ``clip-benchmark`` package (optional extra ``diva-serve[benchmarks]``).

Users who keep clip_benchmark datasets locally get its loaders, class names and templates
instead of a re-implementation. Nothing is downloaded (``download=False``): the data must be
under ``root`` already. Accuracies and recalls are returned in points (0..100).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'diva-serve[benchmarks]' (the clip-benchmark package)"


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
    """clip_benchmark's own metrics for ``dataset`` under ``root``, converted to points."""
    try:
        from clip_benchmark.datasets.builder import (
            build_dataset,
            get_dataset_collate_fn,
            get_dataset_default_task,
        )
    except ImportError as error:
        raise ClipBenchmarkMissing(f"clip_benchmark is not installed: {INSTALL_HINT} ({error})") from error
    import torch

    task = task or get_dataset_default_task(dataset)
    if task not in ("zeroshot_classification", "zeroshot_retrieval"):
        raise ValueError(
            f"task {task!r} is not supported here; use zeroshot_classification or zeroshot_retrieval"
        )
    data = build_dataset(
        dataset, root=str(root), transform=bundle.preprocess, split=split, download=False, task=task
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=get_dataset_collate_fn(dataset)
    )
    model = bundle.model.to(device).eval()
    if task == "zeroshot_classification":
        from clip_benchmark.metrics import zeroshot_classification

        metrics = zeroshot_classification.evaluate(
            model, loader, bundle.tokenizer, data.classes, data.templates, device, amp=False
        )
    else:
        from clip_benchmark.metrics import zeroshot_retrieval

        metrics = zeroshot_retrieval.evaluate(
            model, loader, bundle.tokenizer, device, amp=False, recall_k_list=list(recall_k)
        )
    return {key: _points(value) for key, value in metrics.items()}


def _points(value: Any) -> float:
    value = float(value)
    return value if math.isnan(value) else 100.0 * value
