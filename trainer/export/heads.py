"""Few-shot heads exported beside a model's towers: ``<out>/heads/<id>/`` (head.json + tensors).

Each head is re-read and re-written through :class:`trainer.heads.Head`, so what lands in an
export is exactly what ``Head.from_pretrained`` loads, and nothing the store keeps about who
fitted it (the owner record) travels with it.
"""

from __future__ import annotations

from pathlib import Path

from trainer.heads import Head


def export_heads(heads: dict[str, Path], out_dir: Path | str) -> list[Path]:
    """Write every ``{head id: folder}`` under ``<out_dir>/heads/``; return the folders written."""
    target = Path(out_dir) / "heads"
    return [Head.from_pretrained(src).save_pretrained(target / head_id) for head_id, src in heads.items()]
