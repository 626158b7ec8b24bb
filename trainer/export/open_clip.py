"""open_clip export: ``open_clip_config.json`` + ``open_clip_model.safetensors`` (+ tokenizer files).

The registry already stores this format, so exporting a registered model copies its folder (the
lab models keep their word tokenizer there) and a loose bundle is written with
:func:`save_open_clip`. Either way the result is reloaded with ``create_clip`` and must encode a
probe batch exactly as the source does: a download that does not load is worse than none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.artifacts import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS

if TYPE_CHECKING:
    from trainer.backbones.factory import ClipBundle


class OpenClipExportError(RuntimeError):
    """The written folder does not reload into the same model."""


def export_open_clip(
    bundle: ClipBundle, out_dir: Path | str, *, source_dir: Path | str | None = None, verify: bool = True
) -> Path:
    """Write the open_clip folder for ``bundle`` (copying ``source_dir`` when given) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if source_dir is not None:
        source = Path(source_dir)
        if not (source / OPEN_CLIP_CONFIG).is_file() or not (source / OPEN_CLIP_WEIGHTS).is_file():
            raise FileNotFoundError(f"{source} is not an open_clip folder ({OPEN_CLIP_CONFIG} + weights)")
        shutil.copytree(source, out, dirs_exist_ok=True)
    else:
        from trainer.backbones.factory import save_open_clip

        save_open_clip(bundle, out)
        inner = getattr(bundle.tokenizer, "tokenizer", None)
        if inner is not None and hasattr(inner, "save_pretrained"):
            inner.save_pretrained(str(out))
    if verify:
        verify_open_clip(bundle, out)
    return out


def verify_open_clip(bundle: ClipBundle, folder: Path | str, atol: float = 1e-6) -> float:
    """Reload ``folder`` and compare image and text embeddings with ``bundle``; return the max diff."""
    import torch

    from trainer.backbones.factory import create_clip

    reloaded = create_clip(str(folder))
    generator = torch.Generator().manual_seed(0)
    size = bundle.image_size
    pixels = torch.randn(2, 3, size, size, generator=generator)
    tokens = bundle.tokenizer(["a photo of a dog", "two red squares"])
    with torch.no_grad():
        diffs = [
            (reloaded.model.encode_image(pixels) - bundle.model.float().encode_image(pixels)).abs().max(),
            (reloaded.model.encode_text(tokens) - bundle.model.encode_text(tokens)).abs().max(),
        ]
    worst = float(max(diffs))
    if worst > atol:
        raise OpenClipExportError(f"{folder} reloads with different embeddings (max abs diff {worst:.3g})")
    if not torch.equal(reloaded.tokenizer(["a photo of a dog"]), bundle.tokenizer(["a photo of a dog"])):
        raise OpenClipExportError(f"{folder} reloads with a different tokenizer")
    return worst
