"""bench/peers.py: its client against the project's real server, and the whole run beside infinity
where the peers venv exists (``make peers-venv``; CI has none). No timing is asserted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest


@pytest.mark.slow
def test_client_reads_the_project_server_as_the_tower_computes(load_bench, tmp_path):
    peers = load_bench("peers.py")
    args = peers.parse_args(["--tiny"])
    bundle, hf_dir, model_id = peers.prepare_model("lab-clip-base", tmp_path / "home", tmp_path)
    assert json.loads((hf_dir / "config.json").read_text())["architectures"] == ["CLIPModel"]
    images = peers.jpegs(4)
    with peers.project_server(tmp_path / "home", model_id, args, tmp_path) as server:
        raw = [
            peers.request_bytes(server.port, "/v1/embeddings", body)
            for body in peers.bodies("project", "texts", model_id, images)
        ]
        load = asyncio.run(peers.run_load(server.port, raw, 4, 0.5))
        served = asyncio.run(peers.fetch_vectors(server.port, raw[:5]))
        card = httpx.get(f"{server.url}/v1/models/{model_id}", timeout=30).json()
        assert peers.process_cpu_s(server.process.pid) > 0
    assert load["requests"] > 0 and load["errors"] == 0 and load["p99_ms"] >= load["p50_ms"]
    assert card["loaded_runtimes"] == ["onnx"]  # auto chose the export the bench wrote
    import torch

    with torch.inference_mode():
        expected = bundle.model.encode_text(bundle.tokenizer(peers.TEXTS[:5])).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_a_missing_peer_is_a_clear_error(load_bench, tmp_path):
    peers = load_bench("peers.py")
    with pytest.raises(SystemExit, match="make peers-venv"):
        peers.main(["--tiny", "--peers-venv", str(tmp_path / "none")])


@pytest.mark.slow
def test_whole_run_beside_infinity(load_bench, tmp_path):
    peers = load_bench("peers.py")
    if peers.infinity_python() is None:
        pytest.skip("infinity is not installed: make peers-venv")
    results = peers.main(["--tiny", "--out", str(tmp_path / "peers.json")])
    assert results["max_abs_diff"]["texts"] < 1e-4 and results["max_abs_diff"]["images"] < 1e-4
    for workload in ("texts", "images"):
        for cell in results["table"][workload].values():
            assert cell["project"]["errors"] == cell["infinity"]["errors"] == 0
            assert cell["ratio"] > 0 and cell["project"]["cpu_ms_per_item"] > 0
    assert Path(tmp_path / "peers.json").is_file()
