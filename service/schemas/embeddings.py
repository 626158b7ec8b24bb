"""OpenAI-compatible ``/v1/embeddings`` request and response, extended with images.

``input`` is what OpenAI accepts for text (one string or a list of strings) plus objects
``{"text": ...}`` and ``{"image": <base64 or data URI>}``; texts and images share the CLIP
embedding space, so one request may mix them. ``encoding_format="base64"`` returns the
little-endian float32 bytes base64-encoded, as OpenAI does (its Python client asks for it).
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="base64 bytes or a data URI 'data:image/png;base64,...'")


EmbeddingItem = Union[str, TextInput, ImageInput]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "lab-clip-diva", "input": ["a red square", "a blue circle"]},
                {"model": "lab-clip-diva", "input": [{"image": "data:image/png;base64,iVBORw0..."}]},
            ]
        },
    )

    input: Union[str, list[EmbeddingItem]]
    model: str | None = Field(None, description="Model id; default: the server's default model.")
    encoding_format: Literal["float", "base64"] = "float"
    normalize: bool = Field(True, description="L2-normalise (cosine-ready) embeddings.")
    dimensions: int | None = Field(None, description="Accepted only if equal to the model's dimension.")
    runtime: str | None = Field(None, description="Runtime override: 'torch', 'onnx', ...")
    user: str | None = Field(None, description="Ignored; accepted for OpenAI compatibility.")

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[EmbeddingItem]) -> str | list[EmbeddingItem]:
        if isinstance(value, list) and not value:
            raise ValueError("input must hold at least one item")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Union[list[float], str]


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
