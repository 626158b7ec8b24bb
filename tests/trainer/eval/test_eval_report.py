"""Reports: JSON numbers, real PNG charts and a markdown summary, with and without a base model."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from trainer.eval.gate import zero_shot_gate
from trainer.eval.mmvp import score_pairs
from trainer.eval.report import write_report
from trainer.eval.zeroshot import ZeroShotResult

RIGHT, WRONG = [[2.0, 1.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 1.0]]


def results():
    patterns = ["Orientation and Direction"] * 2 + ["Texts"] * 2
    base = score_pairs(np.array([RIGHT, WRONG, WRONG, WRONG]), patterns)
    post = score_pairs(np.array([RIGHT, RIGHT, RIGHT, WRONG]), patterns)
    return base, post


def test_before_after_report(tmp_path):
    base, post = results()
    zs_base = ZeroShotResult(top1=70.0, top5=90.0, num_images=100, num_classes=10)
    zs_post = ZeroShotResult(top1=69.5, top5=91.0, num_images=100, num_classes=10)
    gate = zero_shot_gate(zs_base.top1, zs_post.top1)
    path = write_report(
        tmp_path, base, post, base_zeroshot=zs_base, post_zeroshot=zs_post, gate=gate, names=("clip", "diva")
    )
    report = json.loads(path.read_text())
    assert report["mmvp"]["base"]["average"] == 25.0 and report["mmvp"]["post"]["average"] == 75.0
    assert report["mmvp"]["delta"]["average"] == 50.0
    assert report["mmvp"]["delta"]["patterns"] == {"Orientation and Direction": 50.0, "Texts": 50.0}
    assert report["zeroshot"]["post"]["top1"] == 69.5
    assert report["gate"]["passed"] is True
    for name in ("mmvp_patterns.png", "zeroshot.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300
    summary = (tmp_path / "summary.md").read_text()
    assert "clip **25.0** -> diva **75.0** (+50.0 points)" in summary
    assert "| Texts | 0.0 | 50.0 | +50.0 |" in summary
    assert "Publish gate: **PASSED**" in summary


def test_single_model_report(tmp_path):
    _, post = results()
    report = json.loads(write_report(tmp_path, None, post).read_text())
    assert set(report["mmvp"]) == {"post"} and "zeroshot_chart" not in report["files"]
    assert (tmp_path / "mmvp_patterns.png").stat().st_size > 1000
    assert "**75.0** points (3/4 pairs)" in (tmp_path / "summary.md").read_text()


def test_before_after_for_the_worker(tmp_path, make_bundle, solid_image, color_names, mmvp_writer):
    from trainer.eval.publish import evaluate_before_after

    bench = mmvp_writer(tmp_path / "bench", [("Color", ("red", "blue"), ("red", "blue"))] * 1)
    for name in color_names:
        (bench / "classify" / name).mkdir(parents=True)
        solid_image(name).save(bench / "classify" / name / "0.png")
    steps = []
    outcome = evaluate_before_after(
        make_bundle(blind=True),
        make_bundle(),
        bench,
        tmp_path / "report",
        progress=lambda d, t: steps.append(d),
    )
    assert steps == [1, 2, 3, 4]
    assert (outcome.base_mmvp.average, outcome.post_mmvp.average) == (0.0, 100.0)
    assert outcome.post_zeroshot.top1 == 100.0 and outcome.gate.passed
    summary = outcome.manifest_eval()
    assert summary["mmvp"]["average"] == 100.0 and summary["mmvp"]["base_average"] == 0.0
    assert summary["gate"]["passed"] is True
    for name in ("report.json", "result.json", "base/result.json", "zeroshot.json", "mmvp_patterns.png"):
        assert (tmp_path / "report" / name).is_file(), name
    # The other way round the gate fails: the blind model lost all its zero-shot ability.
    worse = evaluate_before_after(make_bundle(), make_bundle(blind=True), bench, tmp_path / "r2")
    assert not worse.gate.passed and "failed" in worse.gate.reason
