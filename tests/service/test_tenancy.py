"""Two tenants on one service: every owner-scoped route, called with the other key, answers 404.

alice and bob hold train keys, root an admin key. alice owns a trained model, a dataset and a
job; bob must not list, read, use, export, cancel, resume or delete any of them, and his 404s
must not name them. Built-in and other public models serve both; an admin sees everything.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from state.owners import owner_of
from state.settings import Settings
from worker.embedded import RedisServer

try:
    from tests.e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, png_bytes
except ImportError:
    from e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, png_bytes

PRIVATE = "alice-model"
ALICE, BOB, ROOT = ({"Authorization": f"Bearer {k}"} for k in ("alice", "bob", "root"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabHome:
    from trainer.backbones.factory import create_clip, write_model_folder

    lab = build_template(tmp_path_factory.mktemp("tenancy") / "home")
    write_model_folder(
        create_clip("diva-tiny-vit"), lab.home / "models", PRIVATE, patch_size=8, owner=owner_of("alice")
    )
    return lab


@pytest.fixture(scope="module")
def client(lab: LabHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from service.main import create_app

    executable = shutil.which("redis-server")
    if not executable:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server; .ci/run does it)")
    broker = RedisServer(tmp_path_factory.mktemp("redis"), executable=executable, persist=False)
    settings = Settings(
        home=lab.home,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'jobs.db'}",
        broker_url=broker.start(),
        device="cpu",
        default_model=BASE_MODEL,
        api_keys=["alice:train", "bob:train", "root:admin"],
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client
    broker.stop()


@pytest.fixture(scope="module")
def alice_dataset(client: TestClient) -> str:
    files = [("files", (f"{i}.png", png_bytes(i), "image/png")) for i in range(8)]
    response = client.post("/v1/datasets", files=files, headers=ALICE)
    assert response.status_code == 201
    return response.json()["id"]


def job_body(dataset: str, base_model: str = BASE_MODEL) -> dict:
    params = {"steps": 4, "batch_size": 4}
    return {
        "base_model": base_model,
        "dataset": dataset,
        "recipe": RECIPE,
        "diffusion": DIFFUSION,
        "params": params,
    }


def ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["data"]}


def test_models_private_to_their_owner_public_to_all(client: TestClient) -> None:
    assert PRIVATE in ids(client.get("/v1/models", headers=ALICE))
    bobs = ids(client.get("/v1/models", headers=BOB))
    assert PRIVATE not in bobs and {BASE_MODEL, "lab-clip-base"} <= bobs
    assert PRIVATE in ids(client.get("/v1/models", headers=ROOT))
    assert client.get(f"/v1/models/{PRIVATE}", headers=ALICE).status_code == 200
    hidden = client.get(f"/v1/models/{PRIVATE}", headers=BOB)
    assert hidden.status_code == 404 and hidden.json()["error"]["message"].count(PRIVATE) == 1  # only the ask


def test_inference_and_export_with_anothers_model_is_404(client: TestClient) -> None:
    import base64

    image = base64.b64encode(png_bytes(3)).decode()
    calls = [
        ("post", "/v1/embeddings", {"json": {"model": PRIVATE, "input": ["a red box"]}}),
        ("post", "/v1/classify", {"json": {"model": PRIVATE, "images": [image], "labels": ["a", "b"]}}),
        (
            "post",
            "/v1/embeddings/images",
            {"data": {"model": PRIVATE}, "files": [("files", ("a.png", png_bytes(3), "image/png"))]},
        ),
        ("get", f"/v1/models/{PRIVATE}/export?format=open_clip", {}),
    ]
    for method, path, kwargs in calls:
        assert getattr(client, method)(path, headers=ALICE, **kwargs).status_code == 200, path
        refused = getattr(client, method)(path, headers=BOB, **kwargs)
        assert refused.status_code == 404, (path, refused.text)
    public = client.post("/v1/embeddings", json={"model": BASE_MODEL, "input": ["x"]}, headers=BOB)
    assert public.status_code == 200


def test_datasets_are_isolated(client: TestClient, alice_dataset: str) -> None:
    assert alice_dataset in ids(client.get("/v1/datasets", headers=ALICE))
    assert alice_dataset not in ids(client.get("/v1/datasets", headers=BOB))
    assert alice_dataset in ids(client.get("/v1/datasets", headers=ROOT))
    assert client.get(f"/v1/datasets/{alice_dataset}", headers=BOB).status_code == 404
    assert client.delete(f"/v1/datasets/{alice_dataset}", headers=BOB).status_code == 404
    assert client.get(f"/v1/datasets/{alice_dataset}", headers=ALICE).status_code == 200
    same_images = [("files", (f"{i}.png", png_bytes(i), "image/png")) for i in range(8)]
    bobs = client.post("/v1/datasets", files=same_images, headers=BOB).json()["id"]
    assert bobs != alice_dataset  # the same images make bob his own dataset
    assert client.delete(f"/v1/datasets/{bobs}", headers=BOB).status_code == 204
    assert client.get(f"/v1/datasets/{bobs}", headers=BOB).status_code == 404
    assert client.get(f"/v1/datasets/{alice_dataset}", headers=ALICE).status_code == 200  # blobs shared


def test_jobs_are_isolated(client: TestClient, alice_dataset: str) -> None:
    refused = client.post("/v1/jobs", json=job_body(alice_dataset), headers=BOB)
    assert refused.status_code == 422 and "dataset" in refused.json()["error"]["message"]
    bobs_dataset = client.post(
        "/v1/datasets",
        files=[("files", (f"{i}.png", png_bytes(50 + i), "image/png")) for i in range(4)],
        headers=BOB,
    ).json()["id"]
    on_private = client.post("/v1/jobs", json=job_body(bobs_dataset, PRIVATE), headers=BOB)
    assert on_private.status_code == 422 and "base_model" in on_private.json()["error"]["message"]

    job_id = client.post("/v1/jobs", json=job_body(alice_dataset), headers=ALICE).json()["id"]
    for method, path in [
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/jobs/{job_id}/events"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
        ("post", f"/v1/jobs/{job_id}/resume"),
    ]:
        assert getattr(client, method)(path, headers=BOB).status_code == 404, path
    assert job_id not in ids(client.get("/v1/jobs", headers=BOB))
    assert job_id in ids(client.get("/v1/jobs", headers=ROOT))
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=ALICE).json()["status"] == "cancelled"
    resumed = client.post(f"/v1/jobs/{job_id}/resume", headers=ALICE)
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"


def test_model_deletes_follow_ownership(client: TestClient, lab: LabHome) -> None:
    from trainer.backbones.factory import create_clip, write_model_folder

    write_model_folder(
        create_clip("diva-tiny-vit"), lab.home / "models", "alice-old", owner=owner_of("alice")
    )
    assert client.delete("/v1/models/alice-old", headers=BOB).status_code == 404
    assert client.delete("/v1/models/lab-clip-base", headers=ROOT).status_code == 403  # built in
    assert client.delete(f"/v1/models/{BASE_MODEL}", headers=ALICE).status_code == 403  # public
    assert client.delete("/v1/models/alice-old", headers=ALICE).status_code == 204
    assert client.get("/v1/models/alice-old", headers=ALICE).status_code == 404
    assert not (lab.home / "models" / "alice-old").exists()


def test_retention_is_for_admins(client: TestClient) -> None:
    body = {"models_older_than_days": 3650, "dry_run": True}
    assert client.post("/v1/admin/retention", json=body, headers=ALICE).status_code == 403
    planned = client.post("/v1/admin/retention", json=body, headers=ROOT)
    assert planned.status_code == 200 and planned.json() == {"dry_run": True, "items": [], "bytes": 0}
    assert client.post("/v1/admin/retention", json={}, headers=ROOT).status_code == 422  # no policy
