"""A miniature DIVA_HOME for job tests: tiny CLIP in the registry, tiny diffusion model, a
fast recipe and an uploaded dataset. Built once per session, copied per test (cheap)."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

BASE_MODEL = "tiny-base"
DIFFUSION = "tiny-sd"
RECIPE = "tiny"
RECIPE_YAML = """\
name: tiny
condition: {kind: cls_plus_random, n: 76}
optim: {name: sgd, lr: 0.05, warmup_fraction: 0.0}
steps: 6
batch_size: 4
timestep_draws: 1
crop_size: 16
checkpoint_every: 2
log_every: 1
precision: fp32
"""


@dataclass(frozen=True)
class LabHome:
    home: Path
    dataset: str


def png_bytes(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def build_template(home: Path, num_images: int = 8) -> LabHome:
    """Write everything a job needs under ``home`` (slow part: building the tiny models)."""
    from service.datasets import DatasetLimits, Upload, ingest
    from state.datasets import DatasetStore
    from trainer.backbones.factory import create_clip, write_model_folder
    from trainer.feedback import build_tiny_diffusion

    write_model_folder(create_clip("diva-tiny-vit"), home / "models", BASE_MODEL, patch_size=8)
    build_tiny_diffusion(home / "diffusion" / DIFFUSION, with_vae=False, sample_size=8)
    (home / "recipes").mkdir(parents=True, exist_ok=True)
    (home / "recipes" / f"{RECIPE}.yaml").write_text(RECIPE_YAML)
    uploads = [Upload(f"{i}.png", io.BytesIO(png_bytes(i))) for i in range(num_images)]
    manifest = ingest(uploads, DatasetStore(home / "datasets"), DatasetLimits())
    return LabHome(home, manifest.id)


def upload_dataset(client: object, headers: dict[str, str], num_images: int = 8, first_seed: int = 0) -> str:
    """POST /v1/datasets as the key in ``headers``; the id of that key's dataset."""
    files = [
        ("files", (f"{i}.png", png_bytes(i), "image/png")) for i in range(first_seed, first_seed + num_images)
    ]
    response = client.post("/v1/datasets", files=files, headers=headers)  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    return response.json()["id"]


def copy_home(template: LabHome, home: Path) -> LabHome:
    shutil.copytree(template.home, home, dirs_exist_ok=True)
    return LabHome(home, template.dataset)
