"""On a GPU: bf16 serving with nvJPEG decoding agrees with the exact fp32 CPU path (opt-in: -m gpu)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_helpers import TINY_ID, b64, photo_jpeg, png_bytes

from service.main import create_app
from state.settings import Settings


@pytest.mark.gpu
def test_gpu_bf16_with_gpu_decoding_matches_cpu_fp32(serving_home):
    home, _ = serving_home
    body = {"model": TINY_ID, "input": ["a red cube", *({"image": b64(photo_jpeg(i))} for i in range(6))]}
    body["input"].append({"image": b64(png_bytes(9))})
    results = {}
    for name, extra in {
        "cpu": {"device": "cpu", "precision": "fp32"},
        "gpu": {"device": "cuda", "precision": "bf16", "image_decoder": "torchvision"},
    }.items():
        with TestClient(create_app(Settings(home=home, default_model=TINY_ID, **extra))) as client:
            response = client.post("/v1/embeddings", json=body)
            assert response.status_code == 200, response.text
            results[name] = np.array([row["embedding"] for row in response.json()["data"]])
    cosine = (results["cpu"] * results["gpu"]).sum(axis=1)
    assert cosine.min() > 0.99, cosine


@pytest.mark.gpu
def test_cuda_graph_tower_matches_eager_for_every_batch_size():
    import torch

    from service.inference.torch_runtime import TorchRuntime

    eager = TorchRuntime.load("diva-tiny-vit", None, device="cuda", precision="fp32")
    graphed = TorchRuntime(eager.bundle, device="cuda", precision="fp32", cuda_graphs=True, max_batch=12)
    assert graphed.graphed_images is not None and graphed.graphed_images.sizes == [1, 2, 4, 8, 12]
    for count in (1, 3, 8, 12, 30):  # 30 > max_batch: split into graph-sized chunks
        pixels = torch.randn(count, 3, 32, 32, device="cuda")
        with torch.inference_mode():
            expected = eager.model.encode_image(pixels).float().cpu().numpy()
        np.testing.assert_allclose(graphed.encode_image_tensor(pixels), expected, atol=1e-4)
