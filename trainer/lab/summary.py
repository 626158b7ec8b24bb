"""Several lab builds (seeds) summarised: mean and spread of every score, as a Markdown table.

``diva lab summary var/lab/seed-*`` prints what docs/lab.md reports, so the numbers there can be
regenerated from the builds' ``report/lab.json`` files rather than copied by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_reports(folders: list[Path]) -> list[dict[str, Any]]:
    """``<folder>/report/lab.json`` (or ``<folder>`` itself if it is a lab.json) for each build."""
    reports = []
    for folder in folders:
        path = folder if folder.suffix == ".json" else folder / "report" / "lab.json"
        if not path.is_file():
            raise FileNotFoundError(f"no lab report at {path}; run `diva lab build --out {folder}` first")
        reports.append(json.loads(path.read_text()))
    return reports


def _models(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    models = {"base": report["base"], "diva (lab-diva)": report["post"]}
    for name, scores in report.get("variants", {}).items():
        models[name] = scores
    return models


def _stat(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.1f} ± {arr.std(ddof=1) if len(arr) > 1 else 0.0:.1f}"


def summarise(reports: list[dict[str, Any]]) -> str:
    """Markdown: per model the MMVP average, each pattern and zero-shot, mean ± sample std over seeds."""
    if not reports:
        raise ValueError("no reports to summarise")
    seeds = [r["seed"] for r in reports]
    names = [name for name in _models(reports[0]) if all(name in _models(r) for r in reports)]
    patterns = list(reports[0]["base"]["mmvp_patterns"])
    lines = [f"Seeds {seeds}; mean ± sample standard deviation over seeds (points).", ""]
    header = ["model", "MMVP avg", "Δ vs base", "zero-shot shape", "zero-shot colour", "Δ zero-shot"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        rows = [_models(r)[name] for r in reports]
        base = [r["base"] for r in reports]
        delta = [m["mmvp_average"] - b["mmvp_average"] for m, b in zip(rows, base)]
        zs_delta = [m["zeroshot_mean"] - b["zeroshot_mean"] for m, b in zip(rows, base)]
        shape = _stat([m["zeroshot"]["shape"] for m in rows])
        color = _stat([m["zeroshot"]["color"] for m in rows])
        average = _stat([m["mmvp_average"] for m in rows])
        lines.append(f"| {name} | {average} | {_stat(delta)} | {shape} | {color} | {_stat(zs_delta)} |")
    lines += ["", "| pattern | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for pattern in patterns:
        cells = [_stat([_models(r)[name]["mmvp_patterns"][pattern] for r in reports]) for name in names]
        lines.append(f"| {pattern} | " + " | ".join(cells) + " |")
    probes = [r.get("probes") or {} for r in reports]
    if all(probes):
        lines += [
            "",
            "| pattern | lab-sd caption sensitivity (%, 50 = blind) | feedback alignment at the base "
            "(%, 50 = no signal) | base text cosine of statements "
            "| feedback ceiling: base -> embeddings optimised (%) |",
            "|---|---|---|---|---|",
        ]
        for pattern in patterns:
            sens = _stat([p["diffusion_caption_sensitivity"][pattern] for p in probes])
            aligned = (  # reports from before the probe existed lack it
                _stat([p["feedback_alignment"][pattern] for p in probes])
                if all("feedback_alignment" in p for p in probes)
                else "-"
            )
            cos = np.mean([p["text_cosine_base"][pattern] for p in probes])
            ceiling = "-"
            if all("feedback_ceiling" in p for p in probes):
                before = _stat([p["feedback_ceiling"][pattern]["before"] for p in probes])
                after = _stat([p["feedback_ceiling"][pattern]["after"] for p in probes])
                ceiling = f"{before} -> {after}"
            lines.append(f"| {pattern} | {sens} | {aligned} | {cos:.3f} | {ceiling} |")
    held = [r.get("held_out") for r in reports]
    if all(held):
        gains = [d["gain"] for h in held for d in h["draws"]]
        zs = [d["zeroshot_gain"] for h in held for d in h["draws"]]
        draws, pairs = held[0]["protocol"]["test_seeds"], held[0]["protocol"]["pairs_per_pattern"]
        lines += [
            "",
            f"**Held-out** (test draws {draws}, {pairs} pairs per pattern, "
            f"never tuned on), pooled over {len(draws)} draws x {len(reports)} seeds: "
            f"MMVP gain {_stat(gains)} (min {min(gains):+.1f}), zero-shot gain {_stat(zs)}.",
        ]
    plain = [r.get("plain") for r in reports]
    if all(plain):
        lines += ["", "| plain drawings (zero-shot top-1 over five shapes) | base | diva |", "|---|---|---|"]
        for kind in plain[0]:
            cells = [_stat([p[kind][model]["top1"] for p in plain]) for model in plain[0][kind]]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    cpu = [sum(r.get("stage_cpu_seconds", {}).values()) for r in reports]
    wall = [sum(r.get("stage_seconds", {}).values()) for r in reports]
    lines += [
        "",
        f"Build time per seed: wall {_stat(wall)} s, CPU {_stat(cpu)} s (this process, all stages).",
    ]
    return "\n".join(lines) + "\n"
