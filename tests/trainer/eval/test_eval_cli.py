"""``diva eval ...`` through the real typer app: files written, ids resolved, errors readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from trainer.artifacts import ModelArtifact, ModelManifest
from trainer.backbones import create_clip, save_open_clip
from trainer.eval.zeroshot import evaluate_zeroshot

GOLDEN_BENCHMARK = Path(__file__).parent / "data" / "golden_mmvp"
runner = CliRunner()


def tiny(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_open_clip(create_clip("diva-tiny-vit"), folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return tiny(root / "a", 0), tiny(root / "b", 1)


def test_mmvp_compare_writes_results_and_report(models, tmp_path):
    a, b = models
    out = tmp_path / "out"
    run = runner.invoke(
        app, ["eval", "mmvp", "-m", str(b), "--compare", str(a), "-d", str(GOLDEN_BENCHMARK), "-o", str(out)]
    )
    assert run.exit_code == 0, run.output
    result = json.loads((out / "result.json").read_text())
    assert set(result["patterns"]) and 0.0 <= result["average"] <= 100.0 and len(result["pairs"]) == 18
    base = json.loads((out / "base" / "result.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert report["mmvp"]["delta"]["average"] == pytest.approx(result["average"] - base["average"])
    assert (out / "mmvp_patterns.png").is_file() and (out / "summary.md").is_file()
    assert f"{result['average']:6.1f}" in run.output


def test_model_id_from_diva_home(models, diva_home, tmp_path):
    artifact = ModelArtifact.in_registry(diva_home / "models", "my-encoder")
    save_open_clip(create_clip(str(models[0])), artifact.open_clip_dir)
    artifact.write_manifest(
        ModelManifest(id="my-encoder", architecture="diva-tiny-vit", embed_dim=32, image_size=32,
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    )  # fmt: skip
    by_id = runner.invoke(
        app, ["eval", "mmvp", "-m", "my-encoder", "-d", str(GOLDEN_BENCHMARK), "-o", str(tmp_path / "id")]
    )
    by_path = runner.invoke(
        app, ["eval", "mmvp", "-m", str(models[0]), "-d", str(GOLDEN_BENCHMARK), "-o", str(tmp_path / "p")]
    )
    assert by_id.exit_code == 0 and by_path.exit_code == 0, by_id.output + by_path.output
    same = [json.loads((tmp_path / d / "result.json").read_text())["pairs"] for d in ("id", "p")]
    assert same[0] == same[1]


def test_zeroshot_gate_exit_code_follows_the_decision(models, tmp_path):
    a, b = models
    data = tmp_path / "bench"
    made = runner.invoke(
        app,
        [
            "eval",
            "make-synthetic",
            str(data),
            "--pairs-per-pattern",
            "1",
            "--size",
            "32",
            "--images-per-class",
            "4",
        ],
    )
    assert made.exit_code == 0, made.output
    top1 = {m: evaluate_zeroshot(create_clip(str(m)), data / "classify").top1 for m in (a, b)}
    compare = ["eval", "zeroshot", "-m", str(b), "--compare", str(a), "-d", str(data / "classify")]
    run = runner.invoke(app, [*compare, "-o", str(tmp_path)])
    expected_pass = top1[b] >= top1[a] - 1.0
    assert run.exit_code == (0 if expected_pass else 1), run.output
    assert ("publish gate passed" if expected_pass else "publish gate failed") in run.output
    assert json.loads((tmp_path / "zeroshot.json").read_text())["top1"] == pytest.approx(top1[b])
    lenient = runner.invoke(app, [*compare, "--tolerance", "100"])
    assert lenient.exit_code == 0 and "publish gate passed" in lenient.output


def test_bad_input_is_one_clear_line(models, tmp_path):
    run = runner.invoke(app, ["eval", "mmvp", "-m", str(models[0]), "-d", str(tmp_path / "nowhere")])
    assert run.exit_code == 2 and "error: no Questions.csv in" in run.output
    run = runner.invoke(app, ["eval", "mmvp", "-m", "no-such-model", "-d", str(GOLDEN_BENCHMARK)])
    assert run.exit_code == 2 and "'no-such-model' is no model folder nor a model id" in run.output
    run = runner.invoke(
        app, ["eval", "mmvp", "-m", str(models[0]), "-d", str(GOLDEN_BENCHMARK), "--protocol", "x"]
    )
    assert run.exit_code == 2 and "unknown protocol 'x'" in run.output


def test_model_id_from_diva_models(models, diva_home, monkeypatch, tmp_path):
    from state.settings import get_settings

    monkeypatch.setenv("DIVA_MODELS", f"listed={models[1]}")
    get_settings.cache_clear()
    run = runner.invoke(
        app, ["eval", "mmvp", "-m", "listed", "-d", str(GOLDEN_BENCHMARK), "-o", str(tmp_path / "l")]
    )
    direct = runner.invoke(
        app, ["eval", "mmvp", "-m", str(models[1]), "-d", str(GOLDEN_BENCHMARK), "-o", str(tmp_path / "d")]
    )
    assert run.exit_code == 0 and direct.exit_code == 0, run.output + direct.output
    results = [json.loads((tmp_path / d / "result.json").read_text()) for d in ("l", "d")]
    assert results[0]["model"] == "listed" and results[0]["pairs"] == results[1]["pairs"]
