"""Turn what a user types after ``--model`` into something ``create_clip`` loads.

Accepted, in this order: an existing folder or file path; a model id found in one of the given
registry roots (built-in models first); ``architecture:tag`` (e.g. ``ViT-B-32:openai``); anything
else ``create_clip`` understands (``hf-hub:org/repo``, a bare architecture name). The roots are
passed in: the trainer knows nothing of settings or ``DIVA_HOME`` (the CLI reads those).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.artifacts import MANIFEST_NAME, MODEL_ID_PATTERN, OPEN_CLIP_CONFIG


def resolve_model(spec: str, roots: Sequence[Path | str] = ()) -> tuple[str, str | None]:
    """``(source, pretrained)`` for :func:`trainer.backbones.create_clip`."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty model name")
    if Path(spec).exists():
        return spec, None
    if MODEL_ID_PATTERN.match(spec) and ".." not in spec:
        for root in roots:
            folder = Path(root) / spec
            if (folder / MANIFEST_NAME).is_file() or (folder / "open_clip" / OPEN_CLIP_CONFIG).is_file():
                return str(folder), None
    if not spec.startswith(("hf-hub:", "local-dir:")) and ":" in spec:
        architecture, tag = spec.split(":", 1)
        return architecture, tag
    return spec, None


def load_model(spec: str, roots: Sequence[Path | str] = (), *, device: str = "cpu") -> Any:
    """A :class:`~trainer.backbones.ClipBundle` for ``spec`` (see :func:`resolve_model`)."""
    from trainer.backbones import UnknownBackboneError, create_clip

    source, pretrained = resolve_model(spec, roots)
    try:
        bundle = create_clip(source, pretrained, device=device)
    except UnknownBackboneError as error:
        where = ", ".join(str(root) for root in roots) or "no registry roots"
        raise UnknownBackboneError(
            f"{spec!r} is no model folder nor a model id in ({where}); {error}"
        ) from None
    bundle.source = spec
    return bundle
