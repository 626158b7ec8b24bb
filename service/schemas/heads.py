"""``/v1/heads``: few-shot heads fitted from labelled images, training-free (GDA, Tip-Adapter)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from state.heads import HeadRecord

MAX_EXAMPLES = 10_000


class HeadExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="base64 or data URI")
    label: str = Field(min_length=1, max_length=200)

    @field_validator("label")
    @classmethod
    def _label(cls, label: str) -> str:
        if not label.strip():
            raise ValueError("labels must be non-empty strings")
        return label


class FitHeadRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "lab-clip-diva",
                    "name": "arrow-direction",
                    "kind": "gda",
                    "examples": [
                        {"image": "data:image/png;base64,iVBORw0...", "label": "up"},
                        {"image": "data:image/png;base64,iVBORw0...", "label": "down"},
                    ],
                    "text_weight": 1.0,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200, description="Free text to recognise the head by.")
    model: str | None = Field(None, description="Model whose image features the head reads; default model.")
    kind: Literal["gda", "tip_adapter"] = "gda"
    examples: list[HeadExample] | None = Field(
        None, max_length=MAX_EXAMPLES, description=f"Labelled images (at most {MAX_EXAMPLES})."
    )
    dataset: str | None = Field(
        None, description="An uploaded dataset in folder-per-class layout (class = parent folder)."
    )
    shots: int | None = Field(
        None, ge=1, description="Use this many examples per label (the first ones); default all."
    )
    text_weight: float = Field(
        1.0, ge=0, le=100, description="Weight of the zero-shot term; 0 = pure adapter (any label strings)."
    )
    templates: list[str] | None = Field(
        None, description="Zero-shot prompt templates, each with one '{}'; default 'a photo of a {}.'"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FitHeadRequest:
        if (self.examples is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'examples' or 'dataset'")
        if self.templates is not None and (
            not self.templates or any(t.count("{}") != 1 for t in self.templates)
        ):
            raise ValueError("templates, when given, must each contain '{}' exactly once")
        return self


class HeadPublic(BaseModel):
    id: str
    name: str
    model: str
    kind: str
    labels: list[str]
    shots: int = Field(description="Examples of the rarest label (the 'k' of k-shot).")
    shots_per_label: dict[str, int]
    alpha: float
    param_name: str = Field(description="'shrinkage' (GDA) or 'beta' (Tip-Adapter).")
    param: float
    text_weight: float
    cv_accuracy: float | None = Field(
        description="Cross-validated accuracy on the examples themselves; null with one shot of a label."
    )
    cv_folds: int
    dataset: str | None
    created: str

    @classmethod
    def of(cls, record: HeadRecord) -> HeadPublic:
        fields = record.model_dump(exclude={"owner", "shots"})
        return cls(**fields, shots=min(record.shots.values()), shots_per_label=record.shots)


class HeadList(BaseModel):
    object: str = "list"
    data: list[HeadPublic]
