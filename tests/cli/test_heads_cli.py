"""`diva heads fit|list|show|delete`, `diva classify --head` against a live server, and `diva export`
writing a model's heads beside its towers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from state.settings import Settings

TESTS = Path(__file__).parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load("serving_helpers_cli", TESTS / "service" / "serving_helpers.py")
bench_heads = _load("bench_heads_cli", TESTS.parent / "bench" / "heads.py")


def diva(*args: str):
    from cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def arrows_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for direction in ("up", "down"):
        (tmp_path / "arrows" / direction).mkdir(parents=True)
        for i in range(3):
            bench_heads.draw_arrow(direction, rng).save(tmp_path / "arrows" / direction / f"{i}.png")
    return tmp_path / "arrows"


def test_heads_verbs_against_a_live_server(arrows_folder: Path, tmp_path: Path) -> None:
    from service.main import create_app

    settings = Settings(home=tmp_path / "home", device="cpu", default_model="lab-clip-base")
    with helpers.LiveServer(create_app(settings)) as server:
        url = ("--url", server.url)
        fitted = diva("heads", "fit", str(arrows_folder), "--name", "arrows", "-m", "lab-clip-base", *url)
        assert fitted.exit_code == 0, fitted.output
        head = json.loads(fitted.output)
        assert head["labels"] == ["down", "up"] and head["shots"] == 3
        listed = diva("heads", "list", *url)
        assert head["id"] in listed.output and "2 labels x 3 shots" in listed.output
        image = str(arrows_folder / "up" / "0.png")
        ranked = diva("classify", image, "--head", head["id"], "--top-k", "1", *url)
        assert ranked.exit_code == 0 and ranked.output.startswith(f"{image}: up "), ranked.output
        assert diva("classify", image, *url).exit_code == 2  # neither --label nor --head
        assert diva("heads", "delete", head["id"], *url).exit_code == 0
        gone = diva("heads", "show", head["id"], *url)
        assert gone.exit_code == 1 and "404" in gone.output


def test_export_writes_the_models_heads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from state.heads import HeadStore
    from state.settings import get_settings
    from trainer.heads import Head, fit_head

    home = tmp_path / "home"
    monkeypatch.setenv("DIVA_HOME", str(home))
    get_settings.cache_clear()
    features = np.random.default_rng(1).normal(size=(4, 96)).astype(np.float32)
    head = fit_head(features, ["a", "a", "b", "b"], text_weight=0.0)
    store = HeadStore(home / "heads")
    mine = store.put(head, name="mine", model="lab-clip-base", owner="someone")
    store.put(head, name="other", model="lab-clip-diva", owner=None)
    try:
        result = diva("export", "lab-clip-base", "--format", "open_clip", "--out", str(tmp_path / "out"))
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    exported = tmp_path / "out" / "heads"
    assert [p.name for p in exported.iterdir()] == [mine.id]  # only this model's
    assert not (exported / mine.id / "record.json").exists()  # the owner stays home
    again = Head.from_pretrained(exported / mine.id)
    np.testing.assert_allclose(again.logits(features), head.logits(features), rtol=1e-6)
