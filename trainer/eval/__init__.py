"""Evaluation: MMVP-VLM pairs, zero-shot classification, retrieval, synthetic benchmark, reports.

Names are imported lazily, so ``from trainer.eval import zero_shot_gate`` does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "evaluate_mmvp": "trainer.eval.mmvp",
    "score_pairs": "trainer.eval.mmvp",
    "MMVPResult": "trainer.eval.mmvp",
    "PairPrediction": "trainer.eval.mmvp",
    "PROTOCOLS": "trainer.eval.mmvp",
    "load_mmvp": "trainer.eval.mmvp_data",
    "MMVPPair": "trainer.eval.mmvp_data",
    "MMVPDataError": "trainer.eval.mmvp_data",
    "MMVP_PATTERNS": "trainer.eval.mmvp_data",
    "PATTERN_NAMES": "trainer.eval.mmvp_data",
    "evaluate_zeroshot": "trainer.eval.zeroshot",
    "ZeroShotResult": "trainer.eval.zeroshot",
    "ZeroShotDataError": "trainer.eval.zeroshot",
    "DEFAULT_TEMPLATES": "trainer.eval.zeroshot",
    "evaluate_retrieval": "trainer.eval.retrieval",
    "RetrievalResult": "trainer.eval.retrieval",
    "RetrievalDataError": "trainer.eval.retrieval",
    "evaluate_clip_benchmark": "trainer.eval.benchmark",
    "make_synthetic": "trainer.eval.synthetic",
    "write_report": "trainer.eval.report",
    "evaluate_before_after": "trainer.eval.publish",
    "BeforeAfter": "trainer.eval.publish",
    "zero_shot_gate": "trainer.eval.gate",
    "fine_grained_check": "trainer.eval.gate",
    "FineGrainedCheck": "trainer.eval.gate",
    "GateDecision": "trainer.eval.gate",
    "resolve_model": "trainer.eval.models",
    "load_model": "trainer.eval.models",
    "FeatureEncoder": "trainer.eval.encode",
    "ImageReadError": "trainer.eval.encode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer.eval' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
