"""The ONNX Runtime runtime serves the exported graphs with the same embeddings as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import b64, make_tiny_model, png_bytes

from service.main import create_app
from state.settings import Settings


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory):
    from trainer.artifacts import ModelArtifact
    from trainer.export.onnx import export_onnx

    home = tmp_path_factory.mktemp("onnx-home")
    bundle = make_tiny_model(home / "models", "tiny-onnx", seed=7)
    export_onnx(bundle, ModelArtifact(home / "models" / "tiny-onnx").onnx_dir)
    return home


def embeddings(client, runtime: str | None, body: dict) -> np.ndarray:
    path = "/v1/embeddings" + (f"?runtime={runtime}" if runtime else "")
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]])


def test_onnx_runtime_matches_torch_and_is_the_configured_default(onnx_home):
    body = {
        "model": "tiny-onnx",
        "input": ["a blue circle", {"image": b64(png_bytes(4))}, {"image": b64(png_bytes(5, fmt="JPEG"))}],
        "normalize": False,
    }
    settings = Settings(home=onnx_home, default_model="tiny-onnx", runtime="onnx", device="cpu")
    with TestClient(create_app(settings)) as client:
        by_default = embeddings(client, None, body)
        by_torch = embeddings(client, "torch", body)
        np.testing.assert_allclose(by_default, by_torch, atol=1e-5)
        card = client.get("/v1/models/tiny-onnx").json()
        assert "onnx" in card["formats"] and set(card["loaded_runtimes"]) == {"onnx", "torch"}
        ranked = client.post(
            "/v1/classify?runtime=onnx",
            json={"images": [b64(png_bytes(4))], "labels": ["red", "green", "blue"]},
        ).json()["data"][0]["labels"]
        ranked_torch = client.post(
            "/v1/classify?runtime=torch",
            json={"images": [b64(png_bytes(4))], "labels": ["red", "green", "blue"]},
        ).json()["data"][0]["labels"]
        assert [r["label"] for r in ranked] == [r["label"] for r in ranked_torch]
        np.testing.assert_allclose(
            [r["score"] for r in ranked], [r["score"] for r in ranked_torch], atol=1e-5
        )


def test_onnx_only_folder_preprocesses_from_the_export(onnx_home, tmp_path):
    """A model folder shipped with onnx/ only still preprocesses exactly like the model."""
    import shutil

    target = tmp_path / "models" / "onnx-only"
    shutil.copytree(onnx_home / "models" / "tiny-onnx", target)
    shutil.rmtree(target / "open_clip")
    manifest = (target / "manifest.json").read_text().replace('"tiny-onnx"', '"onnx-only"')
    (target / "manifest.json").write_text(manifest)
    body = {"input": ["a blue circle", {"image": b64(png_bytes(4))}], "normalize": False}
    with TestClient(create_app(Settings(home=tmp_path, default_model="x", runtime="onnx"))) as client:
        only = embeddings(client, None, {**body, "model": "onnx-only"})
    with TestClient(create_app(Settings(home=onnx_home, default_model="x", runtime="onnx"))) as client:
        full = embeddings(client, None, {**body, "model": "tiny-onnx"})
    np.testing.assert_allclose(only, full, atol=1e-6)


def test_auto_runtime_serves_exported_models_with_onnx_and_others_with_torch(onnx_home):
    """``DIVA_RUNTIME=auto`` (the default): ONNX Runtime on CPU where a folder has an fp32 export
    of both towers, PyTorch for the rest; either way the same embeddings."""
    make_tiny_model(onnx_home / "models", "tiny-plain", seed=8)
    body = {"input": ["a blue circle", {"image": b64(png_bytes(4))}], "normalize": False}
    settings = Settings(home=onnx_home, default_model="tiny-onnx", device="cpu")
    assert settings.runtime == "auto"
    with TestClient(create_app(settings)) as client:
        exported = embeddings(client, None, {**body, "model": "tiny-onnx"})
        plain = embeddings(client, None, {**body, "model": "tiny-plain"})
        assert client.get("/v1/models/tiny-onnx").json()["loaded_runtimes"] == ["onnx"]
        assert client.get("/v1/models/tiny-plain").json()["loaded_runtimes"] == ["torch"]
        np.testing.assert_allclose(
            exported, embeddings(client, "torch", {**body, "model": "tiny-onnx"}), atol=1e-5
        )
        assert plain.shape == exported.shape
