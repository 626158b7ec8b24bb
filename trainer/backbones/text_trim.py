"""A causal CLIP text tower run on a batch's used positions only: the same embeddings, less work.

Why: open_clip pads every text to the context length (77 for OpenAI CLIP, 36 for the lab models)
and ``CLIP.encode_text`` always runs all of them, while short queries use a handful. In a causal
tower position ``i`` attends to positions ``<= i`` only, and the pooled token (first, eos or
argmax) sits before the padding, so cutting the trailing columns that are padding in every row
of a batch leaves each embedding unchanged. On ``lab-clip-diva`` (36 positions, texts of 3-7
tokens) that is several times fewer FLOPs per text.

:class:`PrefixText` is the tower on ids of any length up to the context length; :func:`trim_padding`
cuts a batch to its used columns. The PyTorch runtime uses both; the ONNX export writes
:class:`PrefixText` with a dynamic sequence axis so ONNX Runtime trims the same way.

Only open_clip's plain ``CLIP`` text path qualifies (``token_embedding`` + causal ``attn_mask``,
pooling ``first``/``eos``/``argmax``; argmax only with pad id 0, so padding can never be the
maximum); anything else, or a probe batch that disagrees with the full forward pass, keeps the
model's own ``encode_text``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

Ids = TypeVar("Ids", np.ndarray, torch.Tensor)


def pad_id_of(model_cfg: dict[str, Any]) -> int:
    """The text config's pad id (open_clip's default 0)."""
    return int(model_cfg.get("text_cfg", {}).get("pad_id", 0) or 0)


def trim_padding(ids: Ids, pad_id: int = 0) -> Ids:
    """``ids[:, :used]``: ``used`` is one past the last column holding a non-pad id in any row."""
    used_columns = (ids != pad_id).any(0)
    nonzero = used_columns.nonzero()
    last = nonzero[0] if isinstance(ids, np.ndarray) else nonzero[:, 0]
    used = int(last.max()) + 1 if len(last) else 1
    return ids[:, :used]


def supports_prefix(model: Any, pad_id: int) -> bool:
    pool = getattr(model, "text_pool_type", None)
    if type(model).__name__ != "CLIP" or getattr(model, "attn_mask", None) is None:
        return False
    if not hasattr(model, "token_embedding") or not hasattr(model, "positional_embedding"):
        return False
    return pool in ("first", "eos") or (pool == "argmax" and pad_id == 0)


class PrefixText(torch.nn.Module):
    """``encode_text`` of an open_clip ``CLIP`` on ids ``[N, L]`` with any ``L <= context length``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.clip = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        model = self.clip
        used = ids.shape[1]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(ids).to(cast) + model.positional_embedding[:used].to(cast)
        x = model.transformer(x, attn_mask=model.attn_mask[:used, :used])
        x = model.ln_final(x)
        x = text_global_pool(x, ids, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


class TrimmedText:
    """``encode_text`` that trims each batch's padding columns first (same rows, less work)."""

    def __init__(self, model: Any, pad_id: int) -> None:
        self.prefix = PrefixText(model)
        self.pad_id = pad_id

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.prefix(trim_padding(ids, self.pad_id))


def trimmed_text(model: Any, pad_id: int, probe: torch.Tensor) -> TrimmedText | None:
    """The trimmed text path when it applies and agrees with ``model.encode_text`` on ``probe``
    (token ids of a few short texts, padded to the context length), else None."""
    if not supports_prefix(model, pad_id):
        return None
    trimmed = TrimmedText(model, pad_id)
    with torch.inference_mode():
        try:
            got, expected = trimmed(probe), model.encode_text(probe)
        except Exception:  # an unusual tower that looks like CLIP: keep the model's own path
            return None
    scale = float(expected.abs().max()) or 1.0
    return trimmed if float((got - expected).abs().max()) <= 1e-4 * scale else None
