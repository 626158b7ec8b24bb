"""/v1/heads over real HTTP (TestClient) on the built-in lab-clip-base: fit, list, use, delete;
owner scoping between two keys; bad input refused with nothing stored; heads survive a restart."""

from __future__ import annotations

import base64
import importlib.util
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from state.settings import Settings

MODEL = "lab-clip-base"
DIRECTIONS = ["up", "right", "down", "left"]
ALICE, BOB, CAROL = ({"Authorization": f"Bearer {key}"} for key in ("alice", "bob", "carol"))
_spec = importlib.util.spec_from_file_location(
    "bench_heads", Path(__file__).parents[2] / "bench" / "heads.py"
)
bench_heads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_heads)  # the user-style PIL arrows, not the lab renderer


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def b64(image: Image.Image) -> str:
    return base64.b64encode(png(image)).decode()


def arrows(per_class: int, seed: int, size: int = 64) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [(b64(bench_heads.draw_arrow(d, rng, size)), d) for _ in range(per_class) for d in DIRECTIONS]


def fit_body(examples: list[tuple[str, str]], **extra: object) -> dict:
    body = {
        "model": MODEL,
        "name": "arrows",
        "examples": [{"image": i, "label": label} for i, label in examples],
    }
    return {**body, "templates": ["an arrow pointing {}"], **extra}


def make_app(home: Path):
    from service.main import create_app

    keys = ["alice:train", "bob:train", "carol"]
    return create_app(Settings(home=home, device="cpu", default_model=MODEL, api_keys=keys))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("heads") / "home"


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(make_app(home)) as test_client:
        yield test_client


def top1(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["labels"][0]["label"] for row in response.json()["data"]]


def test_a_16_shot_head_reads_own_drawn_arrows_and_survives_a_restart(client: TestClient, home: Path) -> None:
    fitted = client.post("/v1/heads", json=fit_body(arrows(16, seed=0)), headers=ALICE)
    assert fitted.status_code == 201, fitted.text
    head = fitted.json()
    assert head["labels"] == DIRECTIONS and head["shots"] == 16 and head["kind"] == "gda"
    assert head["cv_folds"] == 5 and 0 < head["cv_accuracy"] <= 1 and head["alpha"] > 0
    held_out = arrows(10, seed=1)
    images, truth = [i for i, _ in held_out], [d for _, d in held_out]
    zero_shot = client.post(
        "/v1/classify",
        json={"model": MODEL, "images": images, "labels": DIRECTIONS, "templates": ["an arrow pointing {}"]},
        headers=ALICE,
    )
    assert np.mean(np.array(top1(zero_shot)) == truth) < 0.5
    with TestClient(make_app(home)) as restarted:  # a new app on the same DIVA_HOME
        assert (
            restarted.get(f"/v1/heads/{head['id']}", headers=ALICE).json()["cv_accuracy"]
            == head["cv_accuracy"]
        )
        answer = restarted.post("/v1/classify", json={"images": images, "head": head["id"]}, headers=ALICE)
    assert answer.json()["model"] == MODEL
    assert np.mean(np.array(top1(answer)) == truth) >= 0.8


def test_another_key_cannot_see_use_or_delete_a_head(client: TestClient) -> None:
    head = client.post("/v1/heads", json=fit_body(arrows(2, seed=2)), headers=ALICE).json()
    image = arrows(1, seed=3)[0][0]
    assert client.get(f"/v1/heads/{head['id']}", headers=BOB).status_code == 404
    assert head["id"] not in [h["id"] for h in client.get("/v1/heads", headers=BOB).json()["data"]]
    used = client.post("/v1/classify", json={"images": [image], "head": head["id"]}, headers=BOB)
    assert used.status_code == 404 and used.json()["error"]["type"] == "head_not_found"
    assert client.delete(f"/v1/heads/{head['id']}", headers=BOB).status_code == 404
    assert client.post("/v1/heads", json=fit_body(arrows(2, seed=2)), headers=CAROL).status_code == 403
    assert client.get(f"/v1/heads/{head['id']}", headers=ALICE).status_code == 200
    assert client.delete(f"/v1/heads/{head['id']}", headers=ALICE).status_code == 204
    assert client.get(f"/v1/heads/{head['id']}", headers=ALICE).status_code == 404


def test_classify_with_a_head_checks_model_labels_and_honours_top_k(client: TestClient) -> None:
    body = fit_body(arrows(2, seed=4), kind="tip_adapter", text_weight=0.0)
    body.pop("templates")
    head = client.post("/v1/heads", json=body, headers=ALICE).json()
    assert head["kind"] == "tip_adapter" and head["param_name"] == "beta" and head["text_weight"] == 0
    image = arrows(1, seed=5)[0][0]
    ask = {"images": [image], "head": head["id"]}
    subset = client.post("/v1/classify", json={**ask, "labels": ["up", "down"], "top_k": 1}, headers=ALICE)
    assert top1(subset)[0] in ("up", "down") and len(subset.json()["data"][0]["labels"]) == 1
    other = client.post("/v1/classify", json={**ask, "model": "lab-clip-diva"}, headers=ALICE)
    assert other.status_code == 422 and "lab-clip-base" in other.json()["error"]["message"]
    stranger = client.post("/v1/classify", json={**ask, "labels": ["sideways"]}, headers=ALICE)
    assert stranger.status_code == 422
    unknown = client.post("/v1/classify", json={**ask, "head": "head-0000000000000000"}, headers=ALICE)
    assert unknown.status_code == 404
    assert client.post("/v1/classify", json={"images": [image]}, headers=ALICE).status_code == 422


def test_mixed_image_sizes_are_resized_by_the_models_preprocessing(client: TestClient) -> None:
    rng = np.random.default_rng(6)
    examples = [
        (b64(bench_heads.draw_arrow(d, rng, size).resize((size, size * 3 // 4))), d)
        for size in (32, 64, 150)
        for d in ("up", "down")
    ]
    response = client.post("/v1/heads", json=fit_body(examples), headers=ALICE)
    assert response.status_code == 201, response.text
    assert response.json()["shots_per_label"] == {"up": 3, "down": 3}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda b: {**b, "examples": [e for e in b["examples"] if e["label"] == "up"]}, 422, "two labels"),
        (lambda b: {**b, "examples": b["examples"] * 2501}, 422, "10000"),
        (lambda b: {**b, "shots": 16}, 422, "shots=16"),
        (lambda b: {**b, "examples": [*b["examples"], {"image": "aGVsbG8=", "label": "up"}]}, 400, "input 4"),
        (lambda b: {**b, "dataset": "ds-00000000000000000000"}, 422, "exactly one"),
        (lambda b: {**b, "templates": ["no slot"]}, 422, "'{}'"),
    ],
    ids=["one-class", "too-many", "too-few-shots", "undecodable", "two-sources", "bad-template"],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    client: TestClient, change, status: int, message: str
) -> None:
    before = client.get("/v1/heads", headers=ALICE).json()["data"]
    response = client.post("/v1/heads", json=change(fit_body(arrows(1, seed=7))), headers=ALICE)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert client.get("/v1/heads", headers=ALICE).json()["data"] == before


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_head_from_an_uploaded_folder_per_class_dataset(client: TestClient) -> None:
    rng = np.random.default_rng(8)
    members = {
        f"arrows/{d}/{i}.png": png(bench_heads.draw_arrow(d, rng))
        for d in ("left", "right")
        for i in range(3)
    }
    upload = client.post("/v1/datasets", files={"files": ("a.zip", zipped(members))}, headers=ALICE)
    assert upload.status_code == 201, upload.text
    dataset = upload.json()["id"]
    body = {"model": MODEL, "name": "from-dataset", "dataset": dataset}
    head = client.post("/v1/heads", json=body, headers=ALICE)
    assert head.status_code == 201, head.text
    assert head.json()["labels"] == ["left", "right"] and head.json()["dataset"] == dataset
    assert client.post("/v1/heads", json=body, headers=BOB).status_code == 404  # alice's dataset
    flat = client.post(
        "/v1/datasets", files={"files": ("x.png", members["arrows/left/0.png"])}, headers=ALICE
    )
    refused = client.post("/v1/heads", json={**body, "dataset": flat.json()["id"]}, headers=ALICE)
    assert refused.status_code == 422 and "folder-per-class" in refused.json()["error"]["message"]
