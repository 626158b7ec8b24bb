"""The small interface every inference runtime implements (PyTorch, ONNX Runtime, Triton).

Runtimes see tensors, never HTTP: preprocessing (decode, resize, normalise) and tokenisation
happen before, output normalisation after, both owned elsewhere. Inputs and outputs are numpy so a
remote runtime (Triton) needs no torch on the gateway.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


class RuntimeFailure(RuntimeError):
    """The runtime's backend failed on a valid request (a remote server down or erroring).

    The gateway answers 503 for it: the client's input was fine and a retry may succeed.
    """


@runtime_checkable
class EncoderRuntime(Protocol):
    """Encodes preprocessed batches of one model version."""

    name: str  # "torch" | "onnx" | "triton"
    logit_scale: float  # exp() already applied: the multiplier of cosine similarities
    logit_bias: float | None  # SigLIP-style bias, None for softmax CLIPs

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """float32 [N, 3, H, W], already normalised -> float32 [N, D], *not* L2-normalised."""
        ...

    def encode_texts(self, tokens: np.ndarray) -> np.ndarray:
        """int64 [N, context_length] token ids -> float32 [N, D], *not* L2-normalised."""
        ...

    def close(self) -> None:
        """Free memory / connections; the registry calls it when evicting the model."""
        ...
