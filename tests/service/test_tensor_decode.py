"""The torchvision decoder (GPU path, exercised on CPU) stays close to the exact PIL path."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from serving_helpers import TINY_ID, b64, photo_jpeg, png_bytes

from service.main import create_app
from state.settings import Settings


def test_torchvision_decoder_matches_pil_path(serving_home):
    home, _ = serving_home
    images = [
        photo_jpeg(1),
        photo_jpeg(2, (64, 96)),
        png_bytes(3),
        photo_jpeg(5),
    ]  # 0 and 3: one resize batch
    body = {"model": TINY_ID, "input": [{"image": b64(d)} for d in images]}
    results = {}
    for decoder in ("pil", "torchvision"):
        settings = Settings(home=home, default_model=TINY_ID, image_decoder=decoder)
        with TestClient(create_app(settings)) as client:
            response = client.post("/v1/embeddings", json=body)
            assert response.status_code == 200, response.text
            results[decoder] = np.array([row["embedding"] for row in response.json()["data"]])
            broken = client.post("/v1/embeddings", json={"input": ["x", {"image": b64(photo_jpeg(4)[:400])}]})
            assert broken.status_code == 400 and broken.json()["error"]["message"].startswith("input 1:")
    cosine = (results["pil"] * results["torchvision"]).sum(axis=1)
    assert cosine.min() > 0.995, cosine
    np.testing.assert_allclose(results["pil"][2], results["torchvision"][2], atol=1e-6)  # PNG: PIL path
