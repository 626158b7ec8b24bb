"""``diva export``: the CLI writes each format from a registry id and checks ONNX parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def home(tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from state.settings import get_settings

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny-clip").symlink_to(tiny_registry / "tiny-clip", target_is_directory=True)
    monkeypatch.setenv("DIVA_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def _diva(*args: str):
    from cli.main import app

    return CliRunner().invoke(app, list(args))


def test_export_onnx_verifies_parity(home: Path, tmp_path: Path) -> None:
    result = _diva("export", "tiny-clip", "--format", "onnx", "--out", str(tmp_path / "onnx"))
    assert result.exit_code == 0, result.output
    assert "visual@32" in result.output and "textual@7" in result.output
    assert json.loads((tmp_path / "onnx" / "preprocess.json").read_text())["precision"] == "fp32"


def test_export_hf_vision_only_and_triton(home: Path, tmp_path: Path) -> None:
    hf = _diva("export", "tiny-clip", "-f", "hf", "-o", str(tmp_path / "hf"), "--vision-only")
    assert hf.exit_code == 0, hf.output
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["CLIPVisionModelWithProjection"]
    triton = _diva(
        "export",
        "tiny-clip",
        "-f",
        "triton",
        "-o",
        str(tmp_path / "tr"),
        "--no-verify",
        "--instance-kind",
        "cpu",
        "--install-into",
        str(tmp_path / "repository"),
    )
    assert triton.exit_code == 0, triton.output
    config = (tmp_path / "repository" / "tiny-clip-visual" / "config.pbtxt").read_text()
    assert "KIND_CPU" in config and 'name: "tiny-clip-visual"' in config


def test_bad_format_and_unknown_model_exit_2(home: Path, tmp_path: Path) -> None:
    bad = _diva("export", "tiny-clip", "--format", "pth", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "hf, open_clip, onnx, triton" in bad.output
    missing = _diva("export", "no-such-model", "--format", "hf", "--out", str(tmp_path))
    assert missing.exit_code == 2 and "no-such-model" in missing.output
