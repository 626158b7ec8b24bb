"""A full inference queue answers 429 with Retry-After; queued requests still complete."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving_helpers import TINY_ID, LiveServer, b64, png_bytes

from service.inference import registry as registry_module
from service.main import create_app
from state.settings import Settings


class GatedRuntime:
    """The real torch runtime, but each image forward waits until the test opens the gate."""

    gate = threading.Event()
    entered = threading.Event()

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.io = "gated", inner.io
        self.logit_scale, self.logit_bias = inner.logit_scale, inner.logit_bias

    def encode_images(self, pixels):
        GatedRuntime.entered.set()
        assert GatedRuntime.gate.wait(30), "gate never opened"
        return self.inner.encode_images(pixels)

    def encode_texts(self, tokens):
        return self.inner.encode_texts(tokens)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def gated_runtime():
    from service.inference.torch_runtime import TorchRuntime

    def factory(spec, settings):
        return GatedRuntime(TorchRuntime.load(spec.source, None, device="cpu", precision="fp32"))

    registry_module.register_runtime("gated", factory)
    GatedRuntime.gate.clear()
    GatedRuntime.entered.clear()
    yield
    GatedRuntime.gate.set()
    registry_module.RUNTIME_FACTORIES.pop("gated", None)


def test_full_queue_gets_429_with_retry_after(serving_home, gated_runtime):
    home, _ = serving_home
    settings = Settings(
        home=home,
        default_model=TINY_ID,
        runtime="gated",
        batch_max_size=1,
        batch_queue_size=2,
        max_inputs=2,
        batch_max_wait_ms=0,
    )
    one = {"input": [{"image": b64(png_bytes(1))}]}
    two = {"input": [{"image": b64(png_bytes(2))}, {"image": b64(png_bytes(3))}]}
    with LiveServer(create_app(settings)) as server, ThreadPoolExecutor(2) as pool:
        post = lambda body: httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=60)  # noqa: E731
        first = pool.submit(post, one)  # taken by the (blocked) forward pass
        assert GatedRuntime.entered.wait(30)
        second = pool.submit(post, two)  # waits in the queue: 2 of 2 places
        deadline = time.monotonic() + 30
        while (
            'diva_queue_depth{modality="image",model="tiny-clip"} 2.0'
            not in httpx.get(f"{server.url}/metrics").text
        ):
            assert time.monotonic() < deadline, "second request never queued"
            time.sleep(0.05)
        refused = post(one)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        GatedRuntime.gate.set()
        assert first.result().status_code == 200
        assert len(second.result().json()["data"]) == 2
        assert (
            'diva_rejected_total{modality="image",model="tiny-clip"} 1.0'
            in httpx.get(f"{server.url}/metrics").text
        )
