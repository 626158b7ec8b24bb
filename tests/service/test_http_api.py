"""The HTTP contract through FastAPI's TestClient: parity with open_clip, shapes, auth, extras."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from fastapi import APIRouter
from fastapi.testclient import TestClient
from PIL import Image
from serving_helpers import TINY_ID, b64, png_bytes

from service.api.deps import AdminScope, TrainScope
from service.main import create_app
from state.owners import owner_of
from state.settings import Settings


def open_clip_image(bundle, data: bytes) -> np.ndarray:
    with torch.no_grad():
        return bundle.model.encode_image(bundle.preprocess(Image.open(io.BytesIO(data)))[None]).numpy()[0]


def open_clip_text(bundle, texts: list[str]) -> np.ndarray:
    with torch.no_grad():
        return bundle.model.encode_text(bundle.tokenizer(texts, context_length=bundle.context_length)).numpy()


def vectors(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)


def test_text_and_image_embeddings_equal_open_clip(client, serving_home):
    _, bundle = serving_home
    images = [png_bytes(1), png_bytes(2, size=70, fmt="JPEG")]
    body = {
        "model": TINY_ID,
        "input": [
            "a red square",
            {"image": b64(images[0], uri=True)},
            {"text": "two dogs"},
            {"image": b64(images[1])},
        ],
        "normalize": False,
    }
    got = vectors(client.post("/v1/embeddings", json=body))
    expected_text = open_clip_text(bundle, ["a red square", "two dogs"])
    np.testing.assert_allclose(got[[0, 2]], expected_text, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[1], open_clip_image(bundle, images[0]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[3], open_clip_image(bundle, images[1]), atol=1e-5, rtol=0)


def test_openai_response_shape_normalisation_and_base64(client):
    response = client.post("/v1/embeddings", json={"input": "a photo of a cat"})
    payload = response.json()
    assert payload["object"] == "list" and payload["model"] == TINY_ID
    assert payload["data"][0]["object"] == "embedding" and payload["data"][0]["index"] == 0
    assert payload["usage"]["prompt_tokens"] == payload["usage"]["total_tokens"] > 0
    unit = vectors(response)[0]
    assert unit.shape == (32,)
    assert abs(np.linalg.norm(unit) - 1) < 1e-5
    encoded = client.post("/v1/embeddings", json={"input": ["a photo of a cat"], "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(encoded.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, unit, atol=1e-6)


def test_multipart_image_embeddings_match_json(client):
    images = [png_bytes(5), png_bytes(6)]
    files = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    multipart = vectors(client.post("/v1/embeddings/images", files=files, data={"model": TINY_ID}))
    as_json = vectors(client.post("/v1/embeddings", json={"input": [{"image": b64(d)} for d in images]}))
    np.testing.assert_allclose(multipart, as_json, atol=1e-6)


def test_exif_orientation_is_applied(client):
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    upright = Image.fromarray(pixels)
    # Stored rotated, with EXIF orientation 6 ("rotate 90 CW to display"): decodes upright.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged, plain = io.BytesIO(), io.BytesIO()
    stored.save(tagged, "PNG", exif=exif)
    upright.save(plain, "PNG")
    got = vectors(
        client.post(
            "/v1/embeddings",
            json={"input": [{"image": b64(tagged.getvalue())}, {"image": b64(plain.getvalue())}]},
        )
    )
    np.testing.assert_allclose(got[0], got[1], atol=1e-6)


def test_classify_ranks_labels_and_caches_label_embeddings(client, serving_home):
    _, bundle = serving_home
    image = png_bytes(9)
    labels = ["circle", "square", "triangle", "star"]
    templates = ["a photo of a {}.", "a drawing of a {}."]
    body = {"images": [b64(image)], "labels": labels, "templates": templates, "top_k": 3}
    first = client.post("/v1/classify", json=body)
    assert first.status_code == 200, first.text
    ranked = first.json()["data"][0]["labels"]
    assert len(ranked) == 3
    # Reference: open_clip's usual zero-shot classifier (mean of normalised prompt embeddings).
    text = open_clip_text(bundle, [t.format(label) for label in labels for t in templates])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    classifier = text.reshape(4, 2, -1).mean(1)
    classifier /= np.linalg.norm(classifier, axis=1, keepdims=True)
    img = open_clip_image(bundle, image)
    logits = bundle.model.logit_scale.exp().item() * (img / np.linalg.norm(img)) @ classifier.T
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = np.argsort(-probs)[:3]
    assert [r["label"] for r in ranked] == [labels[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in ranked], probs[order], atol=1e-5)
    second = client.post("/v1/classify", json=body)
    assert second.json() == first.json()
    metrics = client.get("/metrics").text
    assert 'diva_label_cache_total{result="hit"} 1.0' in metrics
    assert 'diva_label_cache_total{result="miss"} 1.0' in metrics


def test_models_endpoints(client):
    listing = client.get("/v1/models").json()
    card = next(m for m in listing["data"] if m["id"] == TINY_ID)
    assert card["object"] == "model" and card["embed_dim"] == 32 and card["image_size"] == 32
    assert card["formats"] == ["open_clip"] and "torch" in card["loaded_runtimes"]
    assert client.get(f"/v1/models/{TINY_ID}").json()["recipe"] == "test"
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and "tiny-clip" in missing.json()["error"]["message"]


def test_health_readiness_metrics_and_request_id(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["models"]["ok"]
    response = client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    client.post("/v1/embeddings", json={"input": "x"})
    metrics = client.get("/metrics").text
    assert (
        'diva_requests_total{method="POST",model="tiny-clip",route="/v1/embeddings",status="200"}' in metrics
    )
    assert "diva_batch_size_bucket" in metrics


@pytest.fixture
def secured(serving_home):
    home, _ = serving_home
    settings = Settings(
        home=home,
        default_model=TINY_ID,
        api_keys=["reader", "trainer:train"],
        cors_origins=["https://ui.example"],
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_auth_scopes_and_cors(secured):
    assert secured.get("/healthz").status_code == 200  # liveness stays open
    assert secured.get("/v1/models").status_code == 401
    wrong = secured.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    malformed = secured.get("/v1/models", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    for key in ("reader", "trainer"):
        assert secured.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    preflight = secured.options(
        "/v1/embeddings",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    other = secured.options(
        "/v1/embeddings", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_scope_dependencies_refuse_lesser_keys_and_name_the_caller(serving_home):
    home, _ = serving_home
    keys = ["reader", "trainer:train", "boss:admin"]
    app = create_app(Settings(home=home, default_model="absent", api_keys=keys))
    router = APIRouter()

    @router.post("/train-only")
    async def train_only(caller: TrainScope) -> dict[str, str | bool | None]:
        return {"owner": caller.owner, "sees_all": caller.sees_all}

    @router.post("/admin-only")
    async def admin_only(caller: AdminScope) -> dict[str, bool]:
        return {"sees_all": caller.sees_all}

    app.include_router(router)
    with TestClient(app) as test_client:
        refused = test_client.post("/train-only", headers={"Authorization": "Bearer reader"})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        allowed = test_client.post("/train-only", headers={"Authorization": "Bearer trainer"})
        assert allowed.json() == {"owner": owner_of("trainer"), "sees_all": False}
        assert test_client.post("/admin-only", headers={"Authorization": "Bearer trainer"}).status_code == 403
        boss = test_client.post("/train-only", headers={"Authorization": "Bearer boss"})
        assert boss.json() == {"owner": owner_of("boss"), "sees_all": True}
        assert test_client.post("/admin-only", headers={"Authorization": "Bearer boss"}).json() == {
            "sees_all": True
        }


def test_openapi_documents_the_contract_with_examples(client):
    schema = client.get("/openapi.json").json()
    for path in ("/v1/embeddings", "/v1/embeddings/images", "/v1/classify", "/v1/models", "/readyz"):
        assert path in schema["paths"]
    request = schema["components"]["schemas"]["EmbeddingRequest"]
    assert request["examples"][0]["model"] == "lab-clip-diva"
    assert "422" in schema["paths"]["/v1/classify"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


def test_label_sets_larger_than_the_queue_are_encoded_in_chunks(serving_home):
    home, _ = serving_home
    settings = Settings(
        home=home, default_model=TINY_ID, batch_max_size=8, batch_queue_size=16, max_inputs=16
    )
    labels = [f"shape number {i}" for i in range(20)]
    body = {"images": [b64(png_bytes(4))], "labels": labels, "templates": ["a {}.", "the {}."]}
    with TestClient(create_app(settings)) as test_client:
        response = test_client.post("/v1/classify", json=body)
        assert response.status_code == 200, response.text
        scores = [item["score"] for item in response.json()["data"][0]["labels"]]
        assert len(scores) == 20 and abs(sum(scores) - 1) < 1e-5
    with pytest.raises(ValueError, match="DIVA_BATCH_QUEUE_SIZE"):
        create_app(Settings(home=home, batch_queue_size=4, max_inputs=16))
