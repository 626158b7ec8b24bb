"""``/v1/models``: OpenAI's model-list shape plus what an encoder user needs to know."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ModelCard(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "diva"
    source: str
    architecture: str | None = None
    pretrained: str | None = None
    base: str | None = None
    recipe: str | None = None
    job: str | None = None
    embed_dim: int | None = None
    image_size: int | None = None
    patch_size: int | None = None
    context_length: int | None = None
    eval: dict[str, Any] = {}
    lineage: list[str] = []
    description: str = ""
    formats: list[str] = []
    loaded_runtimes: list[str] = []


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
