"""Plain drawings the lab renderer never drew: a deterministic, varied folder-per-shape test set,
scored by the generic zero-shot evaluation and by ``diva lab plain``."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from trainer.lab.plain import BACKGROUNDS, draw_plain, make_plain_set, sample_style
from trainer.scenes.world import SHAPES


def test_the_set_is_a_folder_per_shape_and_the_same_for_a_seed(tmp_path):
    first = make_plain_set(tmp_path / "a", per_shape=3, seed=5)
    second = make_plain_set(tmp_path / "b", per_shape=3, seed=5)
    assert sorted(p.name for p in first.iterdir()) == sorted(SHAPES)
    for shape in SHAPES:
        files = sorted((first / shape).glob("*.png"))
        assert len(files) == 3
        for path in files:
            assert path.read_bytes() == (second / shape / path.name).read_bytes()
            assert Image.open(path).size == (64, 64)


def test_styles_vary_background_scale_edges_and_direction():
    rng = np.random.default_rng(0)
    styles = [sample_style(rng, "arrow") for _ in range(200)]
    assert {s.background for s in styles} == set(BACKGROUNDS)
    assert {s.antialias for s in styles} == {True, False}
    assert min(s.scale for s in styles) < 0.35 and max(s.scale for s in styles) > 0.8
    assert {round(s.angle_deg / 90) % 4 for s in styles} == {0, 1, 2, 3}
    for s in styles:  # the whole shape stays on the canvas
        assert s.scale / 2 <= s.cx <= 1 - s.scale / 2 and s.scale / 2 <= s.cy <= 1 - s.scale / 2


def test_a_filled_shape_paints_its_colour_and_a_hollow_one_keeps_the_background_inside():
    rng = np.random.default_rng(1)
    style = sample_style(rng, "circle")
    filled = np.asarray(draw_plain(style, 64))
    hollow = np.asarray(draw_plain(type(style)(**{**style.__dict__, "hollow": True}), 64))
    cy, cx = int(style.cy * 64), int(style.cx * 64)
    assert tuple(filled[cy, cx]) == style.color or np.abs(filled[cy, cx] - style.color).max() < 8
    assert np.abs(hollow[cy, cx].astype(int) - style.background).max() < 8


def test_diva_lab_plain_scores_the_built_in_models(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVA_HOME", str(tmp_path))
    from state.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["lab", "plain", "lab-clip-base", "--per-shape", "4", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)["filled"]["lab-clip-base"]
    assert 0 <= scores["top1"] <= 100 and sorted(scores["per_class"]) == sorted(SHAPES)
    assert (tmp_path / "benchmarks").is_dir()


def test_diva_lab_plain_reads_a_model_folder_and_both_kinds(tmp_path):
    from trainer.artifacts import BUILTIN_MODELS_DIR

    folder = str(BUILTIN_MODELS_DIR / "lab-clip-diva")
    args = ["lab", "plain", folder, "--per-shape", "2", "--both", "--cache", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"| filled | {folder} |" in result.output and f"| hollow | {folder} |" in result.output
    missing = CliRunner().invoke(app, ["lab", "plain", "no-such-model", "--cache", str(tmp_path)])
    assert missing.exit_code == 2 and "unknown model" in missing.output
