"""POST /v1/datasets over HTTP: accepted counts, per-file reasons, refused uploads, auth."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from state.settings import Settings


def png(seed: int, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_client(tmp_path: Path, **settings: object) -> TestClient:
    from service.main import create_app

    return TestClient(create_app(Settings(home=tmp_path / "home", device="cpu", **settings)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, dataset_max_bytes=200_000) as test_client:
        yield test_client


def test_upload_images_lists_rejections(client: TestClient) -> None:
    files = [("files", ("a.png", png(1))), ("files", ("b.png", png(2))), ("files", ("c.txt", b"hello"))]
    response = client.post("/v1/datasets", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["num_images"] == 2 and body["id"].startswith("ds-")
    assert (
        body["rejected"][0]["name"] == "c.txt" and "not a recognised image" in body["rejected"][0]["reason"]
    )
    assert client.get(f"/v1/datasets/{body['id']}").json()["num_images"] == 2
    assert body["id"] in [d["id"] for d in client.get("/v1/datasets").json()["data"]]


def test_upload_one_zip(client: TestClient) -> None:
    archive = zipped({"x/1.png": png(1), "x/2.png": png(2), "x/3.png": png(3)})
    response = client.post("/v1/datasets", files={"files": ("set.zip", archive, "application/zip")})
    assert response.status_code == 201 and response.json()["num_images"] == 3


@pytest.mark.parametrize(
    ("files", "status", "reason"),
    [
        ({"files": ("evil.zip", zipped({"../../x.png": png(1)}))}, 422, "zip slip"),
        ({"files": ("bomb.zip", zipped({"a.png": b"\0" * (4 << 20)}))}, 422, "decompression bomb"),
        ({"files": ("big.png", png(0, 400))}, 413, "larger than 200000 bytes"),
        ({"files": ("notes.txt", b"just text")}, 422, "no valid images"),
        ({"files": ("empty.zip", zipped({}))}, 422, "no valid images"),
        (None, 422, "files"),
    ],
    ids=["zip-slip", "bomb", "too-big", "only-non-images", "empty-archive", "no-files"],
)
def test_bad_uploads_are_refused_with_reasons(
    client: TestClient, files: dict | None, status: int, reason: str
) -> None:
    response = client.post("/v1/datasets", files=files) if files else client.post("/v1/datasets")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert reason in error["message"]
    if reason == "no valid images" and "notes" in str(files):
        assert error["rejected"][0]["name"] == "notes.txt"


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    assert client.get("/v1/datasets/ds-00000000000000000000").status_code == 404
    response = client.get("/v1/datasets/..%2F..%2Fetc")
    assert response.status_code == 404


def test_upload_needs_the_train_scope(tmp_path: Path) -> None:
    with make_client(tmp_path, api_keys=["reader", "trainer:train"]) as client:
        files = {"files": ("a.png", png(1))}
        assert client.post("/v1/datasets", files=files).status_code == 401
        denied = client.post("/v1/datasets", files=files, headers={"Authorization": "Bearer reader"})
        assert denied.status_code == 403
        ok = client.post("/v1/datasets", files=files, headers={"Authorization": "Bearer trainer"})
        assert ok.status_code == 201


def test_dataset_uploads_have_their_own_body_limit(tmp_path: Path) -> None:
    """An upload larger than the inference body limit is accepted by /v1/datasets only."""
    files = [("files", (f"{i}.png", png(i, size=64))) for i in range(4)]
    with make_client(tmp_path, max_request_bytes=20_000, dataset_max_bytes=2_000_000) as client:
        uploaded = client.post("/v1/datasets", files=files)
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["num_images"] == 4
        blob = "x" * 30_000
        refused = client.post("/v1/embeddings", json={"input": [blob]})
        assert refused.status_code == 413 and refused.json()["error"]["type"] == "payload_too_large"
