"""ONNX export: graph contract, parity with PyTorch in ONNX Runtime (fp32 and fp16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from trainer.export.onnx import export_onnx, max_abs_diff, ort_session


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Path:
    return export_onnx(tiny_bundle, tmp_path_factory.mktemp("onnx32"))


def test_graph_names_shapes_and_dynamic_batch(fp32_dir: Path, tiny_bundle) -> None:
    visual = ort_session(fp32_dir / "visual.onnx")
    textual = ort_session(fp32_dir / "textual.onnx")
    (image_in,), (image_out,) = visual.get_inputs(), visual.get_outputs()
    (text_in,), (text_out,) = textual.get_inputs(), textual.get_outputs()
    assert (image_in.name, image_in.type, image_out.name) == ("pixel_values", "tensor(float)", "image_embeds")
    assert (text_in.name, text_in.type, text_out.name) == ("input_ids", "tensor(int64)", "text_embeds")
    assert image_in.shape[1:] == [3, 32, 32] and isinstance(image_in.shape[0], str)
    # the text length is dynamic too (up to the context length): callers may trim padding columns
    assert isinstance(text_in.shape[0], str) and isinstance(text_in.shape[1], str)
    assert image_out.shape[1] == text_out.shape[1] == tiny_bundle.embed_dim


def test_preprocess_json_describes_inputs_and_outputs(fp32_dir: Path, tiny_bundle) -> None:
    info = json.loads((fp32_dir / "preprocess.json").read_text())
    assert info["size"] == [32, 32]
    assert info["mean"] == pytest.approx(list(tiny_bundle.mean))
    assert info["std"] == pytest.approx(list(tiny_bundle.std))
    assert info["context_length"] == tiny_bundle.context_length
    assert info["normalized"] is False
    assert info["logit_scale"] == pytest.approx(float(np.exp(2.5)), rel=1e-5)
    assert info["logit_bias"] is None
    assert info["precision"] == "fp32"


def test_fp32_parity_at_batch_1_7_32(fp32_dir: Path, tiny_bundle) -> None:
    diffs = max_abs_diff(tiny_bundle, fp32_dir, batch_sizes=(1, 7, 32))
    assert set(diffs) == {f"{t}@{n}" for t in ("visual", "textual") for n in (1, 7, 32)}
    assert max(diffs.values()) <= 1e-4, diffs


def test_fp16_parity_keeps_float32_io(tmp_path: Path, tiny_bundle, fp32_dir: Path) -> None:
    out = export_onnx(tiny_bundle, tmp_path, fp16=True)
    session = ort_session(out / "visual.onnx")
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"
    diffs = max_abs_diff(tiny_bundle, out, batch_sizes=(1, 7, 32))
    assert max(diffs.values()) <= 1e-2, diffs
    # weights really are half precision (a few scalars may stay fp32)
    graph = onnx.load(str(out / "visual.onnx")).graph
    half = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer if len(t.dims) >= 2)
    assert half == sum(len(t.dims) >= 2 for t in graph.initializer) > 0
    assert json.loads((out / "preprocess.json").read_text())["precision"] == "fp16"


def test_vision_only_export_and_bad_tower(tmp_path: Path, tiny_bundle) -> None:
    out = export_onnx(tiny_bundle, tmp_path, towers=("visual",))
    assert (out / "visual.onnx").is_file() and not (out / "textual.onnx").exists()
    with pytest.raises(ValueError, match="towers"):
        export_onnx(tiny_bundle, tmp_path, towers=("audio",))
