"""Training-free few-shot heads on frozen CLIP features: GDA and Tip-Adapter.

Pure numpy (safetensors for files): no torch, no service. Fit with :func:`fit_head` from unit
image features, their labels and (optionally) the labels' zero-shot text embeddings; the result
is a :class:`Head`, saved and loaded with ``save_pretrained`` / ``from_pretrained``.
"""

from trainer.heads.head import KINDS, Head, HeadConfig, HeadFitError, fit_head

__all__ = ["KINDS", "Head", "HeadConfig", "HeadFitError", "fit_head"]
