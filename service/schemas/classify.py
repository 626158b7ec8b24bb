"""``/v1/classify``: zero-shot labels for images (or a few-shot head's), best first."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TEMPLATES = ("a photo of a {}.",)


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "lab-clip-diva",
                    "images": ["data:image/png;base64,iVBORw0..."],
                    "labels": ["circle", "square", "triangle"],
                    "templates": ["a photo of a {}.", "a drawing of a {}."],
                    "top_k": 2,
                }
            ]
        },
    )

    images: list[str] = Field(min_length=1, description="base64 or data URIs")
    labels: list[str] | None = Field(
        None, min_length=1, description="Candidate labels (distinct); with a head, a subset of its labels."
    )
    head: str | None = Field(None, description="A few-shot head (POST /v1/heads) to classify with.")
    templates: list[str] | None = Field(
        None, description="Prompt templates with '{}' where the label goes; default 'a photo of a {}.'"
    )
    model: str | None = None
    top_k: int | None = Field(None, ge=1, description="Labels returned per image; default all.")
    runtime: str | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        if any(not label.strip() for label in labels):
            raise ValueError("labels must be non-empty strings")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels

    @field_validator("templates")
    @classmethod
    def _templates(cls, templates: list[str] | None) -> list[str] | None:
        if templates is None:
            return None
        if not templates:
            raise ValueError("templates, when given, must hold at least one template")
        for template in templates:
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must contain '{{}}' exactly once")
        return templates

    @model_validator(mode="after")
    def _labels_or_head(self) -> ClassifyRequest:
        if self.labels is None and self.head is None:
            raise ValueError("give 'labels' (zero-shot) or a 'head'")
        return self


class LabelScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    index: int
    labels: list[LabelScore]


class ClassifyResponse(BaseModel):
    object: str = "list"
    model: str
    data: list[Classification]
