"""``GET /v1/models/{id}/export`` over real HTTP handling (TestClient) and ``export_model``."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from trainer.artifacts import ModelArtifact
from trainer.export import UnknownFormatError, export_model


@pytest.fixture
def client(tiny_registry: Path, tmp_path: Path):
    from fastapi.testclient import TestClient

    from service.main import create_app
    from state.settings import Settings

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for child in tiny_registry.iterdir():
        (home / "models" / child.name).symlink_to(child, target_is_directory=True)
    settings = Settings(home=home, device="cpu", api_keys=["reader", "trainer:train"])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _untar(body: bytes, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as archive:
        archive.extractall(into, filter="data")
    (top,) = list(into.iterdir())
    return top


def test_open_clip_export_reloads_identically(tiny_registry: Path, tmp_path: Path, tiny_bundle) -> None:
    from trainer.backbones.factory import create_clip

    out = export_model(ModelArtifact(tiny_registry / "tiny-clip"), "open_clip", tmp_path / "oc")
    reloaded = create_clip(str(out))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(reloaded.model.encode_image(pixels), tiny_bundle.model.encode_image(pixels))


def test_unknown_format_names_the_choices(tiny_registry: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match="hf, open_clip, onnx, triton"):
        export_model(ModelArtifact(tiny_registry / "tiny-clip"), "pth", tmp_path)


def test_download_hf_archive_loads_in_transformers(client, tmp_path: Path, tiny_bundle) -> None:
    from transformers import CLIPModel

    headers = {"Authorization": "Bearer trainer"}
    response = client.get("/v1/models/tiny-clip/export?format=hf", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-tar"
    assert 'filename="tiny-clip-hf.tar"' in response.headers["content-disposition"]
    folder = _untar(response.content, tmp_path / "x")
    assert folder.name == "tiny-clip-hf"
    model = CLIPModel.from_pretrained(str(folder)).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        diff = (model.get_image_features(pixel_values=pixels) - tiny_bundle.model.encode_image(pixels)).abs()
    assert diff.max() <= 1e-4
    # second download reuses the cached export (same bytes, no re-export)
    again = client.get("/v1/models/tiny-clip/export?format=hf", headers=headers)
    assert again.content == response.content


def test_download_onnx_and_open_clip(client, tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer trainer"}
    onnx = client.get("/v1/models/tiny-clip/export", params={"format": "onnx"}, headers=headers)
    assert onnx.status_code == 200
    names = {p.name for p in _untar(onnx.content, tmp_path / "onnx").iterdir()}
    assert {"visual.onnx", "textual.onnx", "preprocess.json"} <= names
    oc = client.get("/v1/models/tiny-clip/export", params={"format": "open_clip"}, headers=headers)
    names = {p.name for p in _untar(oc.content, tmp_path / "oc").iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors"} <= names


def test_export_needs_train_scope_and_valid_input(client) -> None:
    url = "/v1/models/tiny-clip/export?format=hf"
    assert client.get(url).status_code == 401
    forbidden = client.get(url, headers={"Authorization": "Bearer reader"})
    assert forbidden.status_code == 403
    trainer = {"Authorization": "Bearer trainer"}
    bad = client.get("/v1/models/tiny-clip/export?format=pth", headers=trainer)
    assert bad.status_code == 422 and "format" in bad.json()["error"]["message"]
    missing = client.get("/v1/models/nope/export?format=hf", headers=trainer)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]


def test_existing_export_in_model_folder_is_streamed(tmp_path: Path, tiny_bundle) -> None:
    """A worker-written hf/ folder is served as is; a different variant is made on demand."""
    from export_helpers import write_registry_model
    from fastapi.testclient import TestClient

    from service.main import create_app
    from state.settings import Settings

    artifact = ModelArtifact(write_registry_model(tmp_path / "models", tiny_bundle, "published"))
    export_model(artifact, "hf", artifact.hf_dir)
    (artifact.hf_dir / "README.md").write_text("model card written at publish time\n")
    with TestClient(create_app(Settings(home=tmp_path, device="cpu"))) as client:
        full = client.get("/v1/models/published/export?format=hf")
        vision = client.get("/v1/models/published/export?format=hf&vision_only=true")
    assert full.status_code == vision.status_code == 200
    full_names = {p.name for p in _untar(full.content, tmp_path / "full").iterdir()}
    vision_names = {p.name for p in _untar(vision.content, tmp_path / "vision").iterdir()}
    assert "README.md" in full_names and "README.md" not in vision_names
    assert (tmp_path / "exports" / "published").is_dir()  # the vision-only variant was cached there
