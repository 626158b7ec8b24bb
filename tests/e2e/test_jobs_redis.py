"""End to end on real processes: Redis server + `celery worker` + uvicorn, tiny lab models.

One stack per module; each test leaves every job it started in a final state.
"""

from __future__ import annotations

import base64
import io
import json
import signal

import numpy as np
import pytest
from PIL import Image

try:  # with or without tests/__init__.py
    from tests.e2e.conftest import Stack
    from tests.e2e.support import png_bytes
except ImportError:
    from e2e.conftest import Stack
    from e2e.support import png_bytes

pytestmark = pytest.mark.slow
FINAL = {"succeeded", "failed", "cancelled"}


def _embed_image(stack: Stack, model: str) -> np.ndarray:
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = stack.client.post("/v1/embeddings", json={"model": model, "input": [{"image": uri}]})
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)


def test_upload_train_publish_serve(stack: Stack) -> None:
    files = [("files", (f"img{i}.png", png_bytes(100 + i), "image/png")) for i in range(6)]
    files.append(("files", ("notes.txt", b"not an image", "text/plain")))
    uploaded = stack.client.post("/v1/datasets", files=files)
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()
    assert dataset["num_images"] == 6
    assert [r["name"] for r in dataset["rejected"]] == ["notes.txt"]

    job_id = stack.submit(steps=6, dataset=dataset["id"], publish="always")  # random weights: gate may say no
    events: list[dict] = []
    with stack.client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=180) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    job = events[-1]
    assert job["status"] == "succeeded", stack.diagnostics()
    steps = [e["progress"]["step"] for e in events if e.get("progress")]
    assert steps == sorted(steps) and steps[-1] == 6
    assert job["progress"]["total"] == 6 and job["metrics"]["steps_done"] == 6
    assert job["metrics"]["gate_reason"].startswith(("passed", "failed"))
    new_model = job["result_model"]
    assert new_model and new_model.startswith("tiny-base-tiny-")

    models = {m["id"]: m for m in stack.client.get("/v1/models").json()["data"]}
    assert new_model in models
    card = stack.client.get(f"/v1/models/{new_model}").json()
    assert card["base"] == "tiny-base"
    base_vec, new_vec = _embed_image(stack, "tiny-base"), _embed_image(stack, new_model)
    assert base_vec.shape == new_vec.shape
    assert not np.allclose(base_vec, new_vec, atol=1e-4), "post-training changed nothing"

    paths = stack.client.get("/openapi.json").json()["paths"]
    if "/v1/models/{model_id}/export" in paths:
        exported = stack.client.get(f"/v1/models/{new_model}/export", params={"format": "open_clip"})
        assert exported.status_code == 200, exported.text
        assert len(exported.content) > 1000

    listed = stack.client.get("/v1/jobs").json()["data"]
    assert job_id in [j["id"] for j in listed]


def test_cancel_queued_and_running(stack: Stack) -> None:
    running = stack.submit(steps=400)
    stack.wait_job(running, lambda j: (j.get("progress") or {}).get("step", 0) >= 1)
    queued = stack.submit(steps=6)  # one worker, busy: this one waits
    cancelled = stack.client.post(f"/v1/jobs/{queued}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = stack.client.post(f"/v1/jobs/{queued}/cancel")
    assert again.status_code == 409

    response = stack.client.post(f"/v1/jobs/{running}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"]
    stopped = stack.wait_done(running, 60)
    assert stopped["status"] == "cancelled" and "checkpoint" in stopped["message"]
    assert stopped["progress"]["step"] < 400

    # the queued job's message is consumed later and must not start it
    follow_up = stack.submit(steps=2)
    assert stack.wait_done(follow_up)["status"] == "succeeded"
    never = stack.job(queued)
    assert never["status"] == "cancelled" and never["attempts"] == 0 and never["started_at"] is None


def test_sigkill_worker_resumes_from_checkpoint(stack: Stack) -> None:
    steps = 40
    job_id = stack.submit(steps=steps)
    stack.wait_job(job_id, lambda j: (j.get("progress") or {}).get("step", 0) >= 5)  # checkpoints at 2, 4
    assert stack.worker is not None
    stack.worker.stop(signal.SIGKILL)
    assert stack.job(job_id)["status"] == "running"  # the store still says so: nobody told it
    stack.start_worker()
    job = stack.wait_done(job_id)
    assert job["status"] == "succeeded", stack.diagnostics()
    assert job["resumed_from_step"] is not None and job["resumed_from_step"] >= 2
    assert job["attempts"] == 2
    assert job["metrics"]["steps_done"] == steps and job["progress"]["step"] == steps


def test_cancelled_job_resumes_from_its_checkpoint_and_shows_in_metrics(stack: Stack) -> None:
    steps = 30
    job_id = stack.submit(steps=steps)
    stack.wait_job(job_id, lambda j: (j.get("progress") or {}).get("step_time_s") is not None)
    metrics = stack.client.get("/metrics").text
    assert 'diva_jobs{status="running"} 1.0' in metrics
    assert f'diva_job_images_per_second{{job="{job_id}"}}' in metrics
    assert f'diva_job_step_seconds{{job="{job_id}"}}' in metrics
    stack.wait_job(job_id, lambda j: (j.get("progress") or {}).get("step", 0) >= 5)  # checkpoints at 2, 4
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    stopped = stack.wait_done(job_id, 60)
    assert stopped["status"] == "cancelled"
    assert stack.client.post(f"/v1/jobs/{job_id}/resume").status_code == 202
    assert stack.client.post(f"/v1/jobs/{job_id}/resume").status_code == 409  # queued now
    job = stack.wait_done(job_id)
    assert job["status"] == "succeeded", stack.diagnostics()
    assert job["resumed_from_step"] >= 4 and job["metrics"]["steps_done"] == steps
    assert 'diva_jobs{status="succeeded"}' in stack.client.get("/metrics").text
    assert stack.client.post(f"/v1/jobs/{job_id}/resume").status_code == 409  # succeeded: nothing to resume


def test_sigterm_worker_hands_the_job_back(stack: Stack) -> None:
    """A deploy: SIGTERM stops the job at its next step with a checkpoint and requeues it."""
    job_id = stack.submit(steps=400)
    stack.wait_job(job_id, lambda j: (j.get("progress") or {}).get("step", 0) >= 3)
    assert stack.worker is not None
    stack.worker.stop(signal.SIGTERM, timeout_s=60)
    assert stack.worker.process.returncode == 0, stack.worker.tail()
    released = stack.job(job_id)
    assert released["status"] == "queued" and "worker shut down at step" in released["message"]
    stack.start_worker()
    stack.wait_job(job_id, lambda j: j["status"] == "running" and j["attempts"] == 2)
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job = stack.wait_done(job_id, 60)
    assert job["status"] == "cancelled" and job["resumed_from_step"] >= 3


def test_redis_restart_loses_no_job(stack: Stack) -> None:
    from state.jobs import JobStore

    store = JobStore(f"sqlite:///{(stack.lab.home / 'diva.db').resolve()}")
    running = stack.submit(steps=60)
    stack.wait_job(running, lambda j: j["status"] == "running")
    waiting = stack.submit(steps=4)  # its message lives only in Redis, which keeps nothing on disk
    assert store.get(waiting).enqueues == 1
    stack.restart_redis()
    assert stack.job(running)["status"] == "running"
    assert stack.wait_done(running)["status"] == "succeeded", stack.diagnostics()
    assert stack.wait_done(waiting)["status"] == "succeeded", stack.diagnostics()
    assert store.get(waiting).enqueues >= 2  # the reconciler sent the lost message again


def test_api_restart_loses_nothing(stack: Stack) -> None:
    job_id = stack.submit(steps=40)
    stack.wait_job(job_id, lambda j: j["status"] == "running")
    assert stack.api is not None
    stack.api.stop(signal.SIGTERM)
    stack.start_api()
    job = stack.wait_done(job_id)
    assert job["status"] == "succeeded" and job["metrics"]["steps_done"] == 40
