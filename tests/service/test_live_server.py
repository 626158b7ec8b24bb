"""Acceptance against a real uvicorn server: the openai client, hostile inputs, 32 clients."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from serving_helpers import TINY_ID, LiveServer, b64, png_bytes

from service.main import create_app
from state.settings import Settings

KEY = "good-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_BODY = 2 << 20


@pytest.fixture(scope="module")
def server(serving_home):
    home, _ = serving_home
    settings = Settings(
        home=home,
        default_model=TINY_ID,
        device="cpu",
        api_keys=[KEY, "trainer:train"],
        max_request_bytes=MAX_BODY,
        max_image_bytes=512 << 10,
        max_inputs=16,
        max_text_chars=1000,
        batch_max_wait_ms=20,
    )
    with LiveServer(create_app(settings)) as live:
        yield live


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (a decompression bomb costs nothing to make)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def ico_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "ICO")
    return buffer.getvalue()


def corrupt_png() -> bytes:
    data = bytearray(png_bytes(3))
    data[60:90] = bytes(30)
    return bytes(data)


def emb(*items) -> dict:
    return {"model": TINY_ID, "input": list(items)}


def img(data: bytes) -> dict:
    return {"image": b64(data)}


def cls(**over) -> dict:
    body = {"images": [b64(png_bytes(1))], "labels": ["cat", "dog"]}
    body.update(over)
    return body


# (name, method, path, request kwargs, expected status)
BAD_INPUTS = [
    ("truncated PNG", "POST", "/v1/embeddings", {"json": emb(img(png_bytes(1)[:80]))}, 400),
    ("truncated JPEG", "POST", "/v1/embeddings", {"json": emb(img(png_bytes(1, fmt="JPEG")[:300]))}, 400),
    ("corrupt PNG body", "POST", "/v1/embeddings", {"json": emb(img(corrupt_png()))}, 400),
    ("bad base64", "POST", "/v1/embeddings", {"json": emb({"image": "!!!not base64!!!"})}, 400),
    (
        "20000x20000 image",
        "POST",
        "/v1/embeddings",
        {"json": emb(img(png_header_claiming(20000, 20000)))},
        400,
    ),
    (
        "7000x7000 image over the pixel limit",
        "POST",
        "/v1/embeddings",
        {"json": emb(img(png_header_claiming(7000, 7000)))},
        400,
    ),
    ("empty image", "POST", "/v1/embeddings", {"json": emb({"image": ""})}, 400),
    ("SVG", "POST", "/v1/embeddings", {"json": emb(img(b'<svg xmlns="http://www.w3.org/2000/svg"/>'))}, 400),
    ("PDF", "POST", "/v1/embeddings", {"json": emb(img(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"))}, 400),
    ("format not allowed (ICO)", "POST", "/v1/embeddings", {"json": emb(img(ico_bytes()))}, 400),
    ("not an image", "POST", "/v1/embeddings", {"json": emb(img(b"hello world, not pixels"))}, 400),
    (
        "non-image data URI",
        "POST",
        "/v1/embeddings",
        {"json": emb({"image": "data:text/plain;base64,aGVsbG8="})},
        400,
    ),
    (
        "data URI without base64",
        "POST",
        "/v1/embeddings",
        {"json": emb({"image": "data:image/png,abc"})},
        400,
    ),
    (
        "image over the byte limit",
        "POST",
        "/v1/embeddings",
        {"json": emb(img(np.random.default_rng(0).bytes(600 << 10)))},
        400,
    ),
    ("too many inputs", "POST", "/v1/embeddings", {"json": emb(*[f"t{i}" for i in range(17)])}, 400),
    (
        "oversized body",
        "POST",
        "/v1/embeddings",
        {
            "content": b'{"input": "' + b"a" * MAX_BODY + b'"}',
            "headers": {"Content-Type": "application/json"},
        },
        413,
    ),
    (
        "oversized chunked body",
        "POST",
        "/v1/embeddings",
        {"content": iter([b"x" * (1 << 20)] * 3), "headers": {"Content-Type": "application/json"}},
        413,
    ),
    ("unknown model", "POST", "/v1/embeddings", {"json": {"model": "no-such-model", "input": "x"}}, 404),
    ("unknown runtime", "POST", "/v1/embeddings?runtime=tensorrt", {"json": emb("x")}, 400),
    ("runtime without export", "POST", "/v1/embeddings?runtime=onnx", {"json": emb("x")}, 400),
    (
        "non-JSON body",
        "POST",
        "/v1/embeddings",
        {"content": b"input=hello", "headers": {"Content-Type": "application/json"}},
        422,
    ),
    ("JSON list body", "POST", "/v1/embeddings", {"json": ["x"]}, 422),
    ("input is a number", "POST", "/v1/embeddings", {"json": {"input": 123}}, 422),
    ("token arrays", "POST", "/v1/embeddings", {"json": {"input": [[1, 2, 3]]}}, 422),
    ("missing input", "POST", "/v1/embeddings", {"json": {"model": TINY_ID}}, 422),
    ("empty input list", "POST", "/v1/embeddings", {"json": {"input": []}}, 422),
    ("empty text", "POST", "/v1/embeddings", {"json": emb("ok", "  ")}, 400),
    ("text too long", "POST", "/v1/embeddings", {"json": emb("a" * 1001)}, 400),
    ("unknown field", "POST", "/v1/embeddings", {"json": {"input": "x", "temperature": 1}}, 422),
    (
        "bad encoding_format",
        "POST",
        "/v1/embeddings",
        {"json": {"input": "x", "encoding_format": "int8"}},
        422,
    ),
    ("wrong dimensions", "POST", "/v1/embeddings", {"json": {"input": "x", "dimensions": 7}}, 400),
    ("object with both keys", "POST", "/v1/embeddings", {"json": emb({"text": "x", "image": "y"})}, 422),
    ("multipart without files", "POST", "/v1/embeddings/images", {"data": {"model": TINY_ID}}, 422),
    (
        "multipart text file",
        "POST",
        "/v1/embeddings/images",
        {"files": [("files", ("notes.txt", b"just text", "text/plain"))]},
        400,
    ),
    ("empty labels", "POST", "/v1/classify", {"json": cls(labels=[])}, 422),
    ("blank label", "POST", "/v1/classify", {"json": cls(labels=["cat", " "])}, 422),
    ("duplicate labels", "POST", "/v1/classify", {"json": cls(labels=["cat", "cat"])}, 422),
    ("template without slot", "POST", "/v1/classify", {"json": cls(templates=["a photo"])}, 422),
    ("top_k zero", "POST", "/v1/classify", {"json": cls(top_k=0)}, 422),
    ("no images", "POST", "/v1/classify", {"json": cls(images=[])}, 422),
    ("classify truncated image", "POST", "/v1/classify", {"json": cls(images=[b64(png_bytes(2)[:50])])}, 400),
    ("classify unknown model", "POST", "/v1/classify", {"json": cls(model="nope")}, 404),
    ("unknown route", "GET", "/v1/nothing-here", {}, 404),
    ("wrong method", "GET", "/v1/embeddings", {}, 405),
]
AUTH_FAILURES = [
    ("missing key", {}, 401),
    ("wrong key", {"Authorization": "Bearer wrong"}, 401),
    ("not a bearer key", {"Authorization": f"Basic {KEY}"}, 401),
]


def check_still_serving(base: str) -> None:
    ok = httpx.post(f"{base}/v1/embeddings", json=emb("still here"), headers=AUTH, timeout=30)
    assert ok.status_code == 200 and len(ok.json()["data"][0]["embedding"]) == 32


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c[0])
def test_bad_input_gets_json_4xx_and_server_keeps_serving(server, case):
    name, method, path, kwargs, status = case
    kwargs = dict(kwargs)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    response = httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)
    assert response.status_code == status, (name, response.text)
    error = response.json()["error"]
    assert error["type"] and error["message"], name
    assert "Traceback" not in response.text
    check_still_serving(server.url)


@pytest.mark.parametrize("case", AUTH_FAILURES, ids=lambda c: c[0])
def test_auth_failures(server, case):
    _, headers, status = case
    response = httpx.post(f"{server.url}/v1/embeddings", json=emb("x"), headers=headers, timeout=30)
    assert response.status_code == status
    assert response.json()["error"]["type"] == "authentication_error"
    check_still_serving(server.url)


def test_error_messages_name_the_input_index(server):
    body = emb("fine", img(png_bytes(1)), img(png_bytes(1)[:100]))
    response = httpx.post(f"{server.url}/v1/embeddings", json=body, headers=AUTH, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("input 2:")


def test_official_openai_client(server, serving_home):
    from openai import OpenAI

    _, bundle = serving_home
    client = OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    result = client.embeddings.create(model=TINY_ID, input=["a red cube", "two blue balls"])
    got = np.array([row.embedding for row in result.data])
    with torch.no_grad():
        ref = bundle.model.encode_text(bundle.tokenizer(["a red cube", "two blue balls"], context_length=16))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert result.model == TINY_ID and result.usage.total_tokens > 0
    single = client.embeddings.create(model=TINY_ID, input="a red cube", encoding_format="float")
    np.testing.assert_allclose(single.data[0].embedding, ref[0], atol=1e-5)


def batch_histogram(metrics: str, modality: str) -> tuple[float, float]:
    """(number of batches, number of batches of size 1) for the tiny model and ``modality``."""
    from prometheus_client.parser import text_string_to_metric_families

    count = ones = 0.0
    for family in text_string_to_metric_families(metrics):
        if family.name != "diva_batch_size":
            continue
        for sample in family.samples:
            if sample.labels.get("model") != TINY_ID or sample.labels.get("modality") != modality:
                continue
            if sample.name == "diva_batch_size_count":
                count = sample.value
            if sample.name == "diva_batch_size_bucket" and sample.labels["le"] == "1.0":
                ones = sample.value
    return count, ones


def test_32_concurrent_clients_get_correct_results_in_shared_batches(server, serving_home):
    _, bundle = serving_home
    images = [png_bytes(100 + i) for i in range(32)]
    texts = [f"a photo of {i} red squares" for i in range(32)]
    with torch.no_grad():
        pixels = torch.stack([bundle.preprocess(Image.open(io.BytesIO(d))) for d in images])
        ref_images = torch.nn.functional.normalize(bundle.model.encode_image(pixels), dim=-1).numpy()
        ref_texts = bundle.model.encode_text(bundle.tokenizer(texts, context_length=16))
        ref_texts = torch.nn.functional.normalize(ref_texts, dim=-1).numpy()
    before_images = batch_histogram(httpx.get(f"{server.url}/metrics").text, "image")

    def one_client(i: int) -> tuple[np.ndarray, np.ndarray]:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
            rows = []
            for _ in range(3):
                body = emb({"image": b64(images[i])}, texts[i])
                response = http.post("/v1/embeddings", json=body)
                assert response.status_code == 200, response.text
                rows.append(np.array([d["embedding"] for d in response.json()["data"]]))
            return rows[-1][0], rows[-1][1]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one_client, range(32)))
    for i, (image_vec, text_vec) in enumerate(results):
        np.testing.assert_allclose(image_vec, ref_images[i], atol=1e-5)
        np.testing.assert_allclose(text_vec, ref_texts[i], atol=1e-5)
    count, ones = batch_histogram(httpx.get(f"{server.url}/metrics").text, "image")
    new_batches = count - before_images[0]
    new_singles = ones - before_images[1]
    assert new_batches > 0
    assert new_batches - new_singles > 0, "no image batch held more than one item"
    assert new_batches < 96, "96 image items ran in 96 forward passes: nothing was batched"
