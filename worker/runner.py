"""Run one job end to end inside a worker: claim, train (resuming), publish, record the outcome.

Liveness and cancellation go through the job store, not the broker: a daemon thread writes a
heartbeat (with the latest progress) every few seconds, and the trainer's ``should_stop`` hook
reads the job's cancel flag. A worker that loses its claim (presumed dead, job taken over)
stops at the next step without writing anything.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from typing import Any

from state.datasets import DatasetNotFound, DatasetStore
from state.jobs import Job, JobStatus, JobStore
from state.recipes import JobSetupError, build_train_config, overrides_of, resolve_base_model
from state.settings import Settings

log = logging.getLogger("diva.worker")
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
SHUTTING_DOWN = threading.Event()
"""Set when the worker gets SIGTERM (a deploy): the job checkpoints and goes back to the queue."""


class _Liveness:
    """Heartbeat + progress writer + cancellation check for one running job."""

    def __init__(self, store: JobStore, job: Job, settings: Settings) -> None:
        self.store, self.job_id, self.settings = store, job.id, settings
        self.progress: dict[str, Any] | None = job.progress
        self.lost = self.cancelled = self.timed_out = False
        self.deadline = time.monotonic() + settings.job_time_limit_s
        self._last_cancel_check = 0.0
        self._last_event: tuple[float, int] | None = None  # (monotonic time, step) of the last event
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job.id[:8]}", daemon=True)

    def __enter__(self) -> _Liveness:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop beating (before the final state is written, so no beat races the finish)."""
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        interval = min(self.settings.job_heartbeat_s, self.settings.job_progress_interval_s)
        while not self._done.wait(interval):
            try:
                alive = self.store.heartbeat(self.job_id, WORKER_NAME, self.progress)
                if not alive and not self._done.is_set():
                    log.warning("lost the claim on the job; stopping", extra={"job": self.job_id})
                    self.lost = True
                    return
            except Exception as exc:  # the database blinked: try again next beat
                log.warning("heartbeat failed", extra={"job": self.job_id, "error": str(exc)})

    def on_progress(self, event: Any) -> None:
        data = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(vars(event))
        progress = {k: data.get(k) for k in ("step", "total", "loss", "images_per_s", "eta_s", "lr")}
        now, step = time.monotonic(), int(data.get("step") or 0)
        if self._last_event is not None and step > self._last_event[1]:
            progress["step_time_s"] = (now - self._last_event[0]) / (step - self._last_event[1])
        self._last_event = (now, step)
        self.progress = progress

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now > self.deadline:
            self.timed_out = True
        if now - self._last_cancel_check >= 0.5:
            self._last_cancel_check = now
            try:
                self.cancelled = self.cancelled or self.store.cancel_requested(self.job_id)
            except Exception as exc:
                log.warning("cancel check failed", extra={"job": self.job_id, "error": str(exc)})
        return self.lost or self.cancelled or self.timed_out or SHUTTING_DOWN.is_set()


def run_job(job_id: str, settings: Settings) -> str:
    """Claim and run the job unless it is finished, cancelled, or alive on another worker."""
    store = JobStore(settings.resolved_database_url)
    claim = store.claim(job_id, WORKER_NAME, stale_after_s=settings.job_stale_after_s)
    if claim.job is None:
        log.info("job not run", extra={"job": job_id, "reason": claim.reason})
        return f"skipped: {claim.reason}"
    job = claim.job
    log.info("job started", extra={"job": job_id, "attempt": job.attempts})
    with _Liveness(store, job, settings) as live:
        try:
            outcome = _train_and_publish(job, settings, store, live)
        except JobSetupError as exc:
            live.stop()
            store.finish(job_id, WORKER_NAME, JobStatus.failed, error=str(exc), progress=live.progress)
            return f"failed: {exc}"
        except Exception as exc:
            log.exception("job crashed", extra={"job": job_id})
            live.stop()
            error = f"internal error ({type(exc).__name__}: {exc}); the worker log has the traceback"
            store.finish(job_id, WORKER_NAME, JobStatus.failed, error=error, progress=live.progress)
            return "failed"
        finally:
            _free_memory()
    return outcome


def _train_and_publish(job: Job, settings: Settings, store: JobStore, live: _Liveness) -> str:
    from trainer.train import run_training

    base = resolve_base_model(job.base_model, settings)
    try:
        dataset_dir = DatasetStore(settings.datasets_dir).images_dir(job.dataset)
    except DatasetNotFound as exc:
        raise JobSetupError(str(exc)) from None
    config = build_train_config(
        job_id=job.id,
        base_model_dir=base.open_clip_dir,
        dataset_dir=dataset_dir,
        recipe=job.recipe,
        diffusion=job.diffusion,
        overrides=overrides_of(job.params),
        settings=settings,
    )
    result = run_training(config, progress=live.on_progress, should_stop=live.should_stop)
    if result.resumed_from_step:
        store.set_resumed_from(job.id, int(result.resumed_from_step))
    if live.lost:
        return "abandoned: another worker took the job over"
    progress = {**(live.progress or {}), "step": result.steps_done, "total": config.steps}
    if result.stopped:
        live.stop()
    if result.stopped and not live.cancelled and not live.timed_out and SHUTTING_DOWN.is_set():
        store.release(
            job.id,
            WORKER_NAME,
            message=f"worker shut down at step {result.steps_done}; the job resumes on the next worker",
            progress=progress,
        )
        return "released: worker shutting down"
    if result.stopped and live.cancelled:
        store.finish(
            job.id,
            WORKER_NAME,
            JobStatus.cancelled,
            message=f"cancelled at step {result.steps_done}; the last checkpoint is kept",
            progress=progress,
        )
        return "cancelled"
    if result.stopped:
        limit = settings.job_time_limit_s
        store.finish(
            job.id, WORKER_NAME, JobStatus.failed, error=f"time limit of {limit} s reached", progress=progress
        )
        return "failed: time limit"
    from worker.publish import publish

    published = publish(job, base, result.output_dir, settings)
    live.stop()
    metrics = {
        **published.metrics,
        "steps_done": result.steps_done,
        "final_loss": result.final_loss,
        "resumed_from_step": result.resumed_from_step,
    }
    finished = store.finish(
        job.id,
        WORKER_NAME,
        JobStatus.succeeded,
        result_model=published.model_id,
        metrics=metrics,
        message=published.message,
        progress=progress,
    )
    if finished:  # the model now lives in the registry (or unpublished/): checkpoints are dead weight
        shutil.rmtree(settings.job_run_dir(job.id), ignore_errors=True)
    return f"succeeded: {published.model_id or 'not published'}"


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
