"""Before/after evaluation report: ``report.json``, PNG charts and a short ``summary.md``.

Users look at a picture, not a table: per-pattern bars (base vs post-trained) for MMVP-VLM and a
zero-shot bar pair when zero-shot results are given. Matplotlib's Agg backend is selected
explicitly, so it works on headless workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.eval.gate import FineGrainedCheck, GateDecision
from trainer.eval.mmvp import MMVPResult
from trainer.eval.zeroshot import ZeroShotResult

REPORT_JSON = "report.json"
MMVP_CHART = "mmvp_patterns.png"
ZEROSHOT_CHART = "zeroshot.png"
SUMMARY = "summary.md"


def write_report(
    out_dir: Path | str,
    base: MMVPResult | None,
    post: MMVPResult,
    *,
    base_zeroshot: ZeroShotResult | None = None,
    post_zeroshot: ZeroShotResult | None = None,
    gate: GateDecision | None = None,
    fine_grained: FineGrainedCheck | None = None,
    names: tuple[str, str] = ("base", "post-trained"),
) -> Path:
    """Write the report files into ``out_dir`` and return the path of ``report.json``.

    ``base`` may be ``None`` (a single model's report); the per-pair predictions stay in each
    model's own ``result.json``, the report keeps the numbers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"names": list(names), "mmvp": {}, "zeroshot": {}, "files": {}}
    for role, result in (("base", base), ("post", post)):
        if result is not None:
            report["mmvp"][role] = _mmvp_numbers(result)
    if base is not None:
        report["mmvp"]["delta"] = {
            "average": post.average - base.average,
            "patterns": {k: v - base.patterns.get(k, 0.0) for k, v in post.patterns.items()},
        }
    for role, result in (("base", base_zeroshot), ("post", post_zeroshot)):
        if result is not None:
            report["zeroshot"][role] = {
                "top1": result.top1,
                "top5": result.top5,
                "num_images": result.num_images,
            }
    if gate is not None:
        report["gate"] = {"passed": gate.passed, "reason": gate.reason, "tolerance": gate.tolerance}
    if fine_grained is not None:
        report["fine_grained"] = {
            "regressed": fine_grained.regressed,
            "reason": fine_grained.reason,
            "tolerance": fine_grained.tolerance,
        }

    report["files"]["mmvp_chart"] = mmvp_chart(out_dir / MMVP_CHART, base, post, names).name
    if base_zeroshot is not None or post_zeroshot is not None:
        report["files"]["zeroshot_chart"] = _zeroshot_chart(
            out_dir / ZEROSHOT_CHART, base_zeroshot, post_zeroshot, names
        ).name
    report["files"]["summary"] = SUMMARY
    (out_dir / SUMMARY).write_text(_summary(report, base, post, names))
    path = out_dir / REPORT_JSON
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def _mmvp_numbers(result: MMVPResult) -> dict[str, Any]:
    return {
        "average": result.average,
        "patterns": result.patterns,
        "num_pairs": len(result.pairs),
        "correct_pairs": result.correct_pairs,
        "protocol": result.protocol,
        "model": result.model,
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def mmvp_chart(path: Path, base: MMVPResult | None, post: MMVPResult, names: tuple[str, str]) -> Path:
    """Grouped bars per visual pattern and the average (the chart in every model's report)."""
    import numpy as np

    plt = _pyplot()
    patterns = list(post.patterns)
    if base is not None:
        patterns += [p for p in base.patterns if p not in post.patterns]
    labels = [*patterns, "Average"]
    series = [(names[1], post)] if base is None else [(names[0], base), (names[1], post)]
    x = np.arange(len(labels))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.1 * len(labels)), 4.5))
    for i, (name, result) in enumerate(series):
        values = [result.patterns.get(p, 0.0) for p in patterns] + [result.average]
        offset = (i - (len(series) - 1) / 2) * width
        bars = ax.bar(x + offset, values, width, label=f"{name} ({result.average:.1f})")
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(x, [_wrap(label) for label in labels], fontsize=7)
    ax.set_ylabel("pair accuracy (points)")
    ax.set_ylim(0, 105)
    ax.set_title(f"MMVP-VLM per pattern ({post.protocol} protocol)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _zeroshot_chart(
    path: Path, base: ZeroShotResult | None, post: ZeroShotResult | None, names: tuple[str, str]
) -> Path:
    import numpy as np

    plt = _pyplot()
    series = [(n, r) for n, r in zip(names, (base, post)) if r is not None]
    x = np.arange(2)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, (name, result) in enumerate(series):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, [result.top1, result.top5], width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=1)
    ax.set_xticks(x, ["top-1", "top-5"])
    ax.set_ylabel("accuracy (points)")
    ax.set_ylim(0, 105)
    ax.set_title("Zero-shot classification")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _wrap(label: str, width: int = 14) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _summary(
    report: dict[str, Any], base: MMVPResult | None, post: MMVPResult, names: tuple[str, str]
) -> str:
    lines = ["# Evaluation summary", ""]
    if base is None:
        lines += [
            f"MMVP-VLM average ({post.protocol} protocol): **{post.average:.1f}** points "
            f"({post.correct_pairs}/{len(post.pairs)} pairs).",
            "",
        ]
        lines += ["| pattern | accuracy |", "|---|---|"]
        lines += [f"| {p} | {v:.1f} |" for p, v in post.patterns.items()]
    else:
        delta = post.average - base.average
        lines += [
            f"MMVP-VLM average ({post.protocol} protocol): {names[0]} **{base.average:.1f}** -> "
            f"{names[1]} **{post.average:.1f}** ({delta:+.1f} points).",
            "",
        ]
        lines += [f"| pattern | {names[0]} | {names[1]} | change |", "|---|---|---|---|"]
        for p, v in post.patterns.items():
            b = base.patterns.get(p, 0.0)
            lines.append(f"| {p} | {b:.1f} | {v:.1f} | {v - b:+.1f} |")
    zeroshot = report.get("zeroshot") or {}
    if zeroshot:
        lines += ["", "Zero-shot classification:"]
        for role, name in (("base", names[0]), ("post", names[1])):
            if role in zeroshot:
                z = zeroshot[role]
                lines.append(
                    f"- {name}: top-1 {z['top1']:.1f}, top-5 {z['top5']:.1f} ({z['num_images']} images)"
                )
    if "gate" in report:
        gate = report["gate"]
        lines += ["", f"Publish gate: **{'PASSED' if gate['passed'] else 'FAILED'}** - {gate['reason']}"]
    if "fine_grained" in report:
        check = report["fine_grained"]
        verdict = "REGRESSED" if check["regressed"] else "held"
        lines += ["", f"Fine-grained check: **{verdict}** - {check['reason']}"]
    lines += ["", f"![MMVP-VLM per pattern]({MMVP_CHART})"]
    if "zeroshot_chart" in report["files"]:
        lines.append(f"![Zero-shot]({ZEROSHOT_CHART})")
    return "\n".join(lines) + "\n"
