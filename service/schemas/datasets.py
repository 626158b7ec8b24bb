"""Response schemas of ``/v1/datasets``."""

from __future__ import annotations

from pydantic import BaseModel

from state.datasets import DatasetManifest, Rejection


class DatasetPublic(BaseModel):
    id: str
    num_images: int
    rejected: list[Rejection]
    created: str

    @classmethod
    def of(cls, manifest: DatasetManifest) -> DatasetPublic:
        return cls(
            id=manifest.id,
            num_images=manifest.num_images,
            rejected=manifest.rejected,
            created=manifest.created,
        )


class DatasetList(BaseModel):
    data: list[DatasetPublic]
