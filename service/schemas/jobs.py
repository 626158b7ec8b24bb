"""Request/response schemas of ``/v1/jobs`` (JobCreate in, JobPublic out)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from state.jobs import Job
from state.recipes import JobParams


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(description="Registry id of the encoder to post-train.")
    dataset: str = Field(description="Id returned by POST /v1/datasets.")
    recipe: str = Field("diva", description="Recipe preset name (e.g. 'diva' or 'lab-diva').")
    diffusion: str | None = Field(None, description="Diffusion model id; default: the server's (lab-sd).")
    params: JobParams = Field(default_factory=JobParams)
    publish: Literal["gate", "always"] = Field(
        "gate", description="'gate': publish only if zero-shot accuracy held; 'always': publish anyway."
    )


class JobProgress(BaseModel):
    step: int = 0
    total: int = 0
    loss: float | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    lr: float | None = None
    step_time_s: float | None = None


class JobPublic(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    base_model: str
    dataset: str
    recipe: str
    diffusion: str
    publish: str
    params: dict[str, Any]
    progress: JobProgress | None
    result_model: str | None
    metrics: dict[str, Any] | None
    message: str | None
    error: str | None
    attempts: int
    resumed_from_step: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls(
            id=job.id,
            status=job.status,  # type: ignore[arg-type]
            base_model=job.base_model,
            dataset=job.dataset,
            recipe=job.recipe,
            diffusion=job.diffusion,
            publish=job.publish,
            params=job.params,
            progress=JobProgress(**job.progress) if job.progress else None,
            result_model=job.result_model,
            metrics=job.metrics,
            message=job.message,
            error=job.error,
            attempts=job.attempts,
            resumed_from_step=job.resumed_from_step,
            cancel_requested=job.cancel_requested,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobList(BaseModel):
    data: list[JobPublic]


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"] = "queued"
