"""Triton: repository configs parse with Triton's own schema; a real server serves the export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from export_helpers import write_registry_model
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from trainer.artifacts import ModelArtifact
from trainer.export import export_model
from trainer.export.triton import export_triton, install_into_repository, read_triton_manifest


def _parse(path: Path) -> pb.ModelConfig:
    return text_format.Parse(path.read_text(), pb.ModelConfig())


@pytest.fixture(scope="module")
def repo_export(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Path:
    out = tmp_path_factory.mktemp("triton-export")
    return export_triton(tiny_bundle, out, name="tiny", max_batch_size=48, instances=2, tensorrt=True)


def test_onnxruntime_config_parses_with_model_config_protobuf(repo_export: Path, tiny_bundle) -> None:
    out = repo_export
    visual = _parse(out / "onnxruntime" / "tiny-visual" / "config.pbtxt")
    assert (visual.name, visual.backend, visual.max_batch_size) == ("tiny-visual", "onnxruntime", 48)
    assert [(i.name, i.data_type, list(i.dims)) for i in visual.input] == [
        ("pixel_values", pb.TYPE_FP32, [3, 32, 32])
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in visual.output] == [
        ("image_embeds", pb.TYPE_FP32, [32])
    ]
    assert list(visual.dynamic_batching.preferred_batch_size) == [8, 16, 32, 48]
    assert visual.dynamic_batching.max_queue_delay_microseconds == 2000
    (group,) = visual.instance_group
    assert (group.count, group.kind) == (2, pb.ModelInstanceGroup.KIND_GPU)
    (accelerator,) = visual.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP32"
    textual = _parse(out / "onnxruntime" / "tiny-textual" / "config.pbtxt")
    assert [(i.name, i.data_type, list(i.dims)) for i in textual.input] == [
        ("input_ids", pb.TYPE_INT64, [tiny_bundle.context_length])
    ]
    python = _parse(out / "python" / "tiny-visual" / "config.pbtxt")
    assert python.backend == "python" and python.parameters["onnx_file"].string_value == "model.onnx"
    assert not python.optimization.execution_accelerators.gpu_execution_accelerator
    assert (out / "python" / "tiny-visual" / "1" / "model.py").is_file()
    onnx_bytes = (out / "onnx" / "visual.onnx").read_bytes()
    assert (out / "onnxruntime" / "tiny-visual" / "1" / "model.onnx").read_bytes() == onnx_bytes
    assert read_triton_manifest(out)["models"] == {"visual": "tiny-visual", "textual": "tiny-textual"}


def test_install_into_shared_repository(repo_export: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    (repository / "other-model").mkdir(parents=True)
    assert install_into_repository(repo_export, repository) == ["tiny-textual", "tiny-visual"]
    assert install_into_repository(repo_export, repository) == ["tiny-textual", "tiny-visual"]  # replaces
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repository"]  # no staging left behind
    assert sorted(p.name for p in repository.iterdir()) == ["other-model", "tiny-textual", "tiny-visual"]
    assert _parse(repository / "tiny-visual" / "config.pbtxt").backend == "onnxruntime"
    assert (repository / "tiny-visual" / "1" / "model.onnx").stat().st_size > 0


def test_bad_repository_options_are_named(tmp_path: Path, tiny_bundle) -> None:
    with pytest.raises(ValueError, match="preferred batch sizes"):
        export_triton(tiny_bundle, tmp_path, preferred_batch_sizes=[8, 128], max_batch_size=64)
    with pytest.raises(ValueError, match="kind"):
        export_triton(tiny_bundle, tmp_path, kind="tpu")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Iterator[tuple[Path, object]]:
    """A registry model with onnx/ and triton/ exports, its Python-backend repository served."""
    from pytriton_helpers import triton_server

    root = tmp_path_factory.mktemp("triton-registry")
    artifact = ModelArtifact(write_registry_model(root / "models", tiny_bundle))
    export_model(artifact, "onnx", artifact.onnx_dir)
    export_model(artifact, "triton", artifact.triton_dir, kind="cpu", max_batch_size=16)
    with triton_server(artifact.triton_dir / "python", root / "triton.log") as server:
        yield root, server


def _settings(home: Path, server, protocol: str = "http"):
    from state.settings import Settings

    url = server.http_url if protocol == "http" else server.grpc_url
    return Settings(home=home, device="cpu", triton_url=url, triton_protocol=protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_registry_triton_runtime_matches_onnxruntime(served, protocol: str) -> None:
    from service.inference.registry import ModelRegistry

    home, server = served
    registry = ModelRegistry(_settings(home, server, protocol), roots=[home / "models"])
    try:
        triton = registry.get("tiny-clip", "triton").runtime
        onnx = registry.get("tiny-clip", "onnx").runtime
        assert triton.name == "triton"
        pixels = (
            np.random.default_rng(0).standard_normal((37, 3, 32, 32)).astype(np.float32)
        )  # > max batch 16
        tokens = np.zeros((5, 16), dtype=np.int64)
        tokens[:, 0], tokens[:, 1], tokens[:, 2] = 49406, np.arange(320, 325), 49407
        assert np.abs(triton.encode_images(pixels) - onnx.encode_images(pixels)).max() <= 1e-5
        assert np.abs(triton.encode_texts(tokens) - onnx.encode_texts(tokens)).max() <= 1e-5
        assert triton.logit_scale == pytest.approx(onnx.logit_scale)
    finally:
        registry.close()


def test_http_embeddings_through_triton(served) -> None:
    from fastapi.testclient import TestClient

    from service.main import create_app

    home, server = served
    with TestClient(create_app(_settings(home, server))) as client:
        body = {"model": "tiny-clip", "input": ["a photo of a cat", "two dogs"]}
        via_triton = client.post("/v1/embeddings?runtime=triton", json=body)
        via_onnx = client.post("/v1/embeddings?runtime=onnx", json=body)
    assert via_triton.status_code == 200, via_triton.text
    got = np.array([row["embedding"] for row in via_triton.json()["data"]])
    expected = np.array([row["embedding"] for row in via_onnx.json()["data"]])
    assert got.shape == (2, 32) and np.abs(got - expected).max() <= 1e-5


def test_unreachable_triton_is_a_clear_error(tmp_path: Path, tiny_bundle) -> None:
    from service.inference.registry import ModelRegistry, RuntimeUnavailable
    from state.settings import Settings

    write_registry_model(tmp_path / "models", tiny_bundle)
    settings = Settings(home=tmp_path, device="cpu", triton_url="127.0.0.1:9", triton_timeout_s=2)
    registry = ModelRegistry(settings, roots=[tmp_path / "models"])
    with pytest.raises(RuntimeUnavailable, match="unreachable"):
        registry.get("tiny-clip", "triton")


@pytest.mark.parametrize(("tower", "dims"), [("visual", [3, 224, 224]), ("textual", [77])])
def test_deploy_templates_are_what_the_exporter_writes(tower: str, dims: list[int]) -> None:
    """deploy/triton/ is documentation; it must not drift from the generator."""
    from trainer.export.triton import model_config

    template = (
        Path(__file__).resolve().parents[2] / "deploy" / "triton" / f"vit-l-14-{tower}" / "config.pbtxt"
    )
    expected = model_config(
        f"vit-l-14-{tower}", "onnxruntime", tower=tower, dims=dims, embed_dim=768, max_batch_size=64,
        preferred=[8, 16, 32, 64], delay=2000, instances=1, kind="gpu", tensorrt=True, fp16=True,
    )  # fmt: skip
    assert _parse(template) == text_format.Parse(expected, pb.ModelConfig())


def test_triton_lost_after_loading_is_503_and_other_runtimes_keep_serving(
    tmp_path: Path, tiny_bundle
) -> None:
    """A Triton server that dies under a loaded model gives 503 (retryable), never a 500."""
    from fastapi.testclient import TestClient
    from pytriton_helpers import triton_server

    from service.main import create_app

    artifact = ModelArtifact(write_registry_model(tmp_path / "models", tiny_bundle))
    export_model(artifact, "onnx", artifact.onnx_dir)
    export_model(artifact, "triton", artifact.triton_dir, kind="cpu", max_batch_size=16)
    body = {"model": "tiny-clip", "input": ["a photo of a cat"]}
    with triton_server(artifact.triton_dir / "python", tmp_path / "triton.log") as server:
        settings = _settings(tmp_path, server)
        settings.triton_timeout_s = 5
        with TestClient(create_app(settings)) as client:
            assert client.post("/v1/embeddings?runtime=triton", json=body).status_code == 200
            server.process.terminate()
            server.process.wait(timeout=30)
            lost = client.post("/v1/embeddings?runtime=triton", json=body)
            assert lost.status_code == 503, lost.text
            assert lost.json()["error"]["type"] == "runtime_unavailable"
            assert lost.headers["Retry-After"] == "1"
            assert client.post("/v1/embeddings?runtime=onnx", json=body).status_code == 200
