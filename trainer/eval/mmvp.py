"""MMVP-VLM scoring, exactly as the benchmark's own script does it (METHOD.md section 3).

For each statement ("a photo of " + statement) the two images of its pair are scored with the
model's logits; the statement *picks* the image with the higher probability (softmax over the
two images, or SigLIP's sigmoid with its bias: the pick is the same, the reported probabilities
differ). **A pair counts only if both statements pick their own image.** A pattern's accuracy is
its correct pairs over its pairs, the headline is the mean over patterns, in points (0..100).

Protocols:

* ``standard`` -- the model's pooled image embedding; deterministic; what follow-ups report.
* ``diva`` -- NOT standard: DIVA's released evaluation for OpenAI towers adds the mean of 76
  patch tokens, drawn at random with replacement, to the pooled token. Kept only to reproduce
  DIVA's numbers; it is seeded here (``seed``) so that a run can be repeated. As in DIVA, one
  draw serves a whole batch, so the numbers depend on ``seed`` and ``batch_size``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from trainer.eval.encode import ImageReadError, Progress, read_rgb, running_total
from trainer.eval.mmvp_data import PATTERN_NAMES, MMVPDataError, MMVPPair, load_mmvp

PROMPT_PREFIX = "a photo of "
Protocol = Literal["standard", "diva"]
PROTOCOLS: tuple[str, ...] = ("standard", "diva")
RESULT_FILE = "result.json"


@dataclass
class PairPrediction:
    """One pair's outcome. ``scores[s][i]``: probability that statement ``s`` describes image ``i``."""

    index: int
    pattern: str
    question_ids: tuple[int, int]
    picks: tuple[int, int]
    scores: tuple[tuple[float, float], tuple[float, float]]
    correct: bool


@dataclass
class MMVPResult:
    """Per-pattern accuracy and the average in points, with every pair's prediction."""

    average: float
    patterns: dict[str, float]
    pairs: list[PairPrediction]
    protocol: str = "standard"
    model: str = ""
    data: str = ""
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def correct_pairs(self) -> int:
        return sum(pair.correct for pair in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "mmvp-vlm",
            "average": self.average,
            "patterns": self.patterns,
            "num_pairs": len(self.pairs),
            "correct_pairs": self.correct_pairs,
            "protocol": self.protocol,
            "model": self.model,
            "data": self.data,
            "seed": self.seed,
            "extra": self.extra,
            "pairs": [asdict(pair) for pair in self.pairs],
        }

    def save(self, out_dir: Path | str) -> Path:
        """Write ``<out_dir>/result.json`` (``average``, ``patterns``, per-pair predictions)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / RESULT_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> MMVPResult:
        """Read a ``result.json`` (or the folder holding one) written by :meth:`save`."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULT_FILE
        data = json.loads(path.read_text())
        pairs = [
            PairPrediction(
                index=p["index"],
                pattern=p["pattern"],
                question_ids=tuple(p["question_ids"]),
                picks=tuple(p["picks"]),
                scores=tuple(tuple(row) for row in p["scores"]),
                correct=p["correct"],
            )
            for p in data.get("pairs", [])
        ]
        return cls(
            average=data["average"],
            patterns=data["patterns"],
            pairs=pairs,
            protocol=data.get("protocol", "standard"),
            model=data.get("model", ""),
            data=data.get("data", ""),
            seed=data.get("seed"),
            extra=data.get("extra", {}),
        )


def score_pairs(
    logits: np.ndarray, patterns: Sequence[str], *, sigmoid: bool = False, question_ids=None
) -> MMVPResult:
    """Score ``logits[p, s, i]`` (pair, statement, image); statement ``s`` is true of image ``s``.

    Pure arithmetic, no model: the tests feed hand-built matrices. Patterns are reported in the
    official order first, then any other pattern names in order of appearance.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3 or logits.shape[1:] != (2, 2):
        raise ValueError(f"logits must have shape (pairs, 2, 2), got {logits.shape}")
    if len(patterns) != logits.shape[0]:
        raise ValueError(f"{len(patterns)} pattern names for {logits.shape[0]} pairs")
    if sigmoid:
        probs = 1.0 / (1.0 + np.exp(-logits))
    else:
        shifted = np.exp(logits - logits.max(axis=2, keepdims=True))
        probs = shifted / shifted.sum(axis=2, keepdims=True)
    # The official script: image 1 is picked only if it scores strictly higher (ties -> image 2).
    picks = np.where(logits[:, :, 0] > logits[:, :, 1], 0, 1)
    correct = (picks[:, 0] == 0) & (picks[:, 1] == 1)
    pairs = [
        PairPrediction(
            index=p,
            pattern=patterns[p],
            question_ids=tuple(question_ids[p]) if question_ids is not None else (2 * p + 1, 2 * p + 2),
            picks=(int(picks[p, 0]), int(picks[p, 1])),
            scores=tuple(tuple(float(x) for x in row) for row in probs[p]),
            correct=bool(correct[p]),
        )
        for p in range(len(patterns))
    ]
    order = [name for name in PATTERN_NAMES if name in set(patterns)]
    order += [name for name in dict.fromkeys(patterns) if name not in order]
    per_pattern = {}
    for name in order:
        hits = [pair.correct for pair in pairs if pair.pattern == name]
        per_pattern[name] = 100.0 * sum(hits) / len(hits)
    average = float(np.mean(list(per_pattern.values()))) if per_pattern else 0.0
    return MMVPResult(average=average, patterns=per_pattern, pairs=pairs)


def evaluate_mmvp(
    bundle: Any,
    data_dir: Path | str,
    *,
    protocol: Protocol = "standard",
    device: str = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
    seed: int = 0,
    diva_tokens: int = 76,
) -> MMVPResult:
    """Score a CLIP on an MMVP-VLM folder; every image and every statement is encoded once."""
    import torch

    from trainer.eval.encode import FeatureEncoder

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    pairs = load_mmvp(data_dir)
    feature_fn = _diva_feature_fn(bundle.model, seed, diva_tokens) if protocol == "diva" else None
    encoder = FeatureEncoder(bundle, device=device, batch_size=batch_size, image_feature_fn=feature_fn)

    images = [(pair, slot) for pair in pairs for slot in (0, 1)]
    statements = [PROMPT_PREFIX + pair.statements[slot] for pair, slot in images]
    advance = running_total(progress, 2 * len(images))
    image_features = encoder.images(images, loader=_pair_image_loader, progress=advance)
    text_features = encoder.texts(statements, progress=advance)
    # Only the pair's own 2 x 2 block matters: cosine[p, statement, image].
    cosine = torch.einsum(
        "psd,pid->psi", text_features.view(len(pairs), 2, -1), image_features.view(len(pairs), 2, -1)
    )
    per_pair = encoder.scale(cosine).numpy()
    result = score_pairs(
        per_pair,
        [pair.pattern for pair in pairs],
        sigmoid=encoder.sigmoid,
        question_ids=[pair.question_ids for pair in pairs],
    )
    result.protocol = protocol
    result.model = str(getattr(bundle, "source", "") or "")
    result.data = str(data_dir)
    result.seed = seed if protocol == "diva" else None
    result.extra = {"logit_scale": encoder.logit_scale, "logit_bias": encoder.logit_bias}
    return result


def _pair_image_loader(item: tuple[MMVPPair, int]):
    pair, slot = item
    try:
        return read_rgb(pair.images[slot])
    except ImageReadError as error:
        raise MMVPDataError(
            f"Questions.csv row {pair.rows[slot]} (Question ID {pair.question_ids[slot]}): {error}"
        ) from error


def _diva_feature_fn(model: Any, seed: int, num_tokens: int):
    """DIVA's released evaluation: pooled + mean of ``num_tokens`` random projected patch tokens."""
    import torch

    visual = getattr(model, "visual", None)
    if visual is None or not hasattr(visual, "output_tokens") or getattr(visual, "proj", None) is None:
        raise ValueError(
            "protocol 'diva' needs an open_clip VisionTransformer tower with a projection "
            "(model.visual.output_tokens and model.visual.proj); use protocol 'standard'"
        )
    generator = torch.Generator().manual_seed(seed)

    def features(pixels: torch.Tensor) -> torch.Tensor:
        previous = visual.output_tokens
        visual.output_tokens = True
        try:
            pooled, tokens = visual(pixels)
        finally:
            visual.output_tokens = previous
        tokens = tokens @ visual.proj
        index = torch.randint(0, tokens.shape[1], (num_tokens,), generator=generator).to(tokens.device)
        return pooled + tokens[:, index].mean(dim=1)

    return features
