"""/v1/jobs over HTTP (no worker): validation with reasons, limits, ownership, cancel, events.

Messages go to a private redis-server started for this module; nothing consumes them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from state.settings import Settings
from worker.embedded import RedisServer

try:  # with or without tests/__init__.py
    from tests.e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, upload_dataset
except ImportError:
    from e2e.support import BASE_MODEL, DIFFUSION, RECIPE, LabHome, build_template, upload_dataset


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> LabHome:
    return build_template(tmp_path_factory.mktemp("jobs-api") / "home")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    executable = shutil.which("redis-server")
    if not executable:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server; .ci/run does it)")
    server = RedisServer(tmp_path_factory.mktemp("redis"), executable=executable, persist=False)
    yield server.start()
    server.stop()


def client_for(lab: LabHome, tmp_path: Path, **settings: object) -> TestClient:
    from service.main import create_app

    db = f"sqlite:///{tmp_path / 'jobs.db'}"
    return TestClient(create_app(Settings(home=lab.home, database_url=db, device="cpu", **settings)))


def body(lab: LabHome, **changes: object) -> dict:
    params = {"steps": 4, "batch_size": 4, **changes.pop("params", {})}  # type: ignore[dict-item]
    return {
        "base_model": BASE_MODEL,
        "dataset": lab.dataset,
        "recipe": RECIPE,
        "diffusion": DIFFUSION,
        "params": params,
        **changes,
    }


@pytest.fixture
def client(lab: LabHome, broker: str, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(lab, tmp_path, broker_url=broker, max_queued_jobs_per_key=2) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"base_model": "ghost"}, "base_model: unknown model 'ghost'"),
        ({"dataset": "ds-00000000000000000000"}, "dataset: no dataset"),
        ({"params": {"batch_size": 64}}, "larger than the dataset (8 images)"),
        ({"params": {"steps": 0}}, "params.steps"),
        ({"params": {"lr": -1.0}}, "params.lr"),
        ({"params": {"learning_rate": 0.1}}, "params.learning_rate"),
        ({"recipe": "nope"}, "unknown recipe 'nope'"),
        ({"diffusion": "../etc"}, "diffusion: invalid model id"),
        (
            {"params": {"steps": 3, "projector_warmup_steps": 3}},
            "projector_warmup_steps (3) must be below steps",
        ),
        ({"publish": "sometimes"}, "publish"),
    ],
)
def test_invalid_jobs_get_422_saying_what_is_wrong(
    client: TestClient, lab: LabHome, changes, fragment
) -> None:
    response = client.post("/v1/jobs", json=body(lab, **changes))
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]
    assert client.get("/v1/jobs").json()["data"] == []


def test_submit_list_cancel_and_events(client: TestClient, lab: LabHome) -> None:
    response = client.post("/v1/jobs", json=body(lab))
    assert response.status_code == 202 and response.json()["status"] == "queued"
    job_id = response.json()["id"]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "queued" and job["params"] == {"steps": 4, "batch_size": 4}
    assert [j["id"] for j in client.get("/v1/jobs").json()["data"]] == [job_id]
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
        lines = [line for line in stream.iter_lines() if line]
    assert lines[0] == "event: end" and '"status":"cancelled"' in lines[1]
    assert client.get("/v1/jobs/0123").status_code == 404


def test_queued_jobs_per_key_are_limited(client: TestClient, lab: LabHome) -> None:
    for _ in range(2):
        assert client.post("/v1/jobs", json=body(lab)).status_code == 202
    refused = client.post("/v1/jobs", json=body(lab))
    assert refused.status_code == 429 and "at most 2 queued jobs" in refused.json()["error"]["message"]


def test_keys_see_only_their_jobs(lab: LabHome, broker: str, tmp_path: Path) -> None:
    keys = ["alice:train", "bob:train", "reader"]
    with client_for(lab, tmp_path, broker_url=broker, api_keys=keys) as client:
        alice, bob = {"Authorization": "Bearer alice"}, {"Authorization": "Bearer bob"}
        assert (
            client.post("/v1/jobs", json=body(lab), headers={"Authorization": "Bearer reader"}).status_code
            == 403
        )
        assert client.post("/v1/jobs", json=body(lab), headers=alice).status_code == 422  # not her dataset
        dataset = upload_dataset(client, alice)
        job_id = client.post("/v1/jobs", json=body(lab, dataset=dataset), headers=alice).json()["id"]
        assert client.get(f"/v1/jobs/{job_id}", headers=alice).status_code == 200
        assert client.get(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=bob).status_code == 404
        assert client.get("/v1/jobs", headers=bob).json()["data"] == []


def test_without_a_broker_submission_is_503(lab: LabHome, tmp_path: Path) -> None:
    with client_for(lab, tmp_path, broker_url=None) as client:
        response = client.post("/v1/jobs", json=body(lab))
        assert response.status_code == 503 and "DIVA_BROKER_URL" in response.json()["error"]["message"]


def test_readiness_reports_database_and_broker(lab: LabHome, broker: str, tmp_path: Path) -> None:
    with client_for(lab, tmp_path, broker_url=broker) as client:
        checks = client.get("/readyz").json()["checks"]
        assert checks["database"]["ok"] and checks["broker"]["ok"]
    with client_for(lab, tmp_path, broker_url="redis://127.0.0.1:1/0") as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert not response.json()["checks"]["broker"]["ok"]
        assert "broker unreachable" in response.json()["checks"]["broker"]["detail"]


def test_broker_down_keeps_the_job_queued_for_the_reconciler(lab: LabHome, tmp_path: Path) -> None:
    from state.jobs import JobStore

    with client_for(lab, tmp_path, broker_url="redis://127.0.0.1:1/0") as client:
        response = client.post("/v1/jobs", json=body(lab))
        assert response.status_code == 202
        job_id = response.json()["id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    job = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}").get(job_id)
    assert job.enqueues == 0 and job.enqueued_at is None  # the reconciler will send it
