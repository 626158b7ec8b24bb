"""The registry: folders + DIVA_MODELS, lazy loading, LRU under a budget, hot additions."""

from __future__ import annotations

import os

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import make_tiny_model

from service.inference.registry import ModelNotFound, ModelRegistry, RuntimeUnavailable, parse_model_entry
from service.main import create_app
from state.settings import Settings


def registry_for(tmp_path, **settings) -> ModelRegistry:
    return ModelRegistry(Settings(home=tmp_path, device="cpu", **settings), roots=[tmp_path / "models"])


def test_lazy_load_and_lru_eviction_under_budget(tmp_path):
    make_tiny_model(tmp_path / "models", "model-a", seed=1)
    make_tiny_model(tmp_path / "models", "model-b", seed=2)
    registry = registry_for(tmp_path, model_memory_budget_mb=1)
    assert [spec.id for spec in registry.list()] == ["model-a", "model-b"]
    assert registry.loaded() == []
    first = registry.get("model-a")
    assert registry.get("model-a") is first and registry.loaded() == [("model-a", "torch")]
    registry.get("model-b")
    assert registry.loaded() == [("model-b", "torch")]  # a was over budget and least recent
    assert first.runtime.model is None  # closed: memory released


def test_unknown_ids_and_runtimes_are_clear_errors(tmp_path):
    make_tiny_model(tmp_path / "models", "model-a")
    registry = registry_for(tmp_path)
    with pytest.raises(ModelNotFound, match="available: model-a"):
        registry.get("model-z")
    with pytest.raises(RuntimeUnavailable, match="available: auto, onnx, torch, triton"):
        registry.get("model-a", "tensorrt")
    with pytest.raises(RuntimeUnavailable, match="no ONNX export"):
        registry.get("model-a", "onnx")


def test_configured_models_from_diva_models(tmp_path):
    spec = parse_model_entry("tiny=diva-tiny-vit")
    assert (spec.id, spec.source, spec.pretrained) == ("tiny", "diva-tiny-vit", None)
    spec = parse_model_entry("l14=ViT-L-14:openai")
    assert (spec.source, spec.pretrained) == ("ViT-L-14", "openai")
    assert parse_model_entry("hub=hf-hub:org/repo").source == "hf-hub:org/repo"
    for bad in ("no-equals-sign", "Bad Id=ViT-B-32", "x="):
        with pytest.raises(ValueError, match="bad DIVA_MODELS entry"):
            parse_model_entry(bad)
    registry = registry_for(tmp_path, models=["tiny=diva-tiny-vit"])
    loaded = registry.get("tiny")
    assert loaded.io.embed_dim == 32
    assert loaded.runtime.encode_texts(loaded.io.tokens(["hello"])).shape == (1, 32)
    assert registry.spec("tiny").describe()["source"] == "config"
    with pytest.raises(ModelNotFound, match="no registry folder"):
        registry.artifact("tiny")


def test_model_written_later_or_rewritten_is_served_without_restart(tmp_path):
    settings = Settings(home=tmp_path, default_model="absent", device="cpu")
    with TestClient(create_app(settings)) as client:
        body = {"model": "late-model", "input": "a photo"}
        assert client.post("/v1/embeddings", json=body).status_code == 404
        make_tiny_model(settings.models_dir, "late-model", seed=3)
        first = client.post("/v1/embeddings", json=body)
        assert first.status_code == 200
        # A new version written in place (a re-published job) replaces the loaded one.
        make_tiny_model(settings.models_dir, "late-model", seed=4)
        manifest = settings.models_dir / "late-model" / "manifest.json"
        stat = manifest.stat()
        os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        second = client.post("/v1/embeddings", json=body)
        a = np.array(first.json()["data"][0]["embedding"])
        b = np.array(second.json()["data"][0]["embedding"])
        assert not np.allclose(a, b)


def test_default_model_that_fails_to_load_makes_readiness_say_why(tmp_path):
    make_tiny_model(tmp_path / "models", "broken")
    (tmp_path / "models" / "broken" / "open_clip" / "open_clip_model.safetensors").write_bytes(b"not weights")
    settings = Settings(home=tmp_path, default_model="broken", device="cpu")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "failed to load" in ready.json()["checks"]["models"]["detail"]
        assert client.get("/healthz").status_code == 200
        refused = client.post("/v1/embeddings", json={"input": "x"})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "model_unavailable"
