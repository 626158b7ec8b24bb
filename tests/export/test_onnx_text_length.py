"""The text tower's ONNX export takes a batch's used columns only and gives the same embeddings."""

from __future__ import annotations

import numpy as np
import torch

from trainer.backbones.factory import create_clip
from trainer.backbones.text_trim import PrefixText, TrimmedText, trim_padding
from trainer.export.onnx import export_onnx, ort_session, read_preprocess


def test_trim_padding_cuts_columns_that_are_padding_in_every_row():
    ids = np.array([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]])
    assert trim_padding(ids).tolist() == [[5, 6], [7, 0]]
    assert trim_padding(torch.from_numpy(ids)).shape == (2, 2)
    assert trim_padding(np.zeros((2, 4), dtype=np.int64)).shape == (2, 1)  # all padding: one column


def test_prefix_tower_matches_the_full_tower_on_trimmed_ids(tmp_path):
    bundle = create_clip("diva-tiny-vit")
    ids = bundle.tokenizer(["a red circle", "two small blue boxes on the left of a star", "a"])
    with torch.inference_mode():
        full = bundle.model.encode_text(ids)
        trimmed = TrimmedText(bundle.model, 0)(ids)
        # the prefix tower on more columns than needed (padding kept) also agrees
        padded = PrefixText(bundle.model)(ids[:, : trim_padding(ids).shape[1] + 3])
    assert trim_padding(ids).shape[1] < ids.shape[1]
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, full, atol=1e-5, rtol=1e-5)

    out = export_onnx(bundle, tmp_path / "onnx", towers=("textual",))
    info = read_preprocess(out)
    assert info["text_length"] == "dynamic" and info["pad_id"] == 0
    session = ort_session(out / "textual.onnx")
    for columns in (trim_padding(ids).shape[1], ids.shape[1]):  # trimmed, and the full context
        got = session.run(None, {"input_ids": ids[:, :columns].numpy()})[0]
        np.testing.assert_allclose(got, full.numpy(), atol=1e-5)
