"""One call for the jobs worker: evaluate base and post-trained the same way, gate, report.

``evaluate_before_after`` runs MMVP-VLM (standard protocol) on both encoders, zero-shot on the
benchmark's ``classify/`` set (or another ImageFolder), applies :func:`zero_shot_gate` and writes
the report into ``out_dir`` (a model's ``report/`` folder). ``manifest_eval`` is the small dict
that goes into ``ModelManifest.eval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.eval.encode import Progress
from trainer.eval.gate import DEFAULT_TOLERANCE, GateDecision, zero_shot_gate
from trainer.eval.mmvp import MMVPResult, evaluate_mmvp
from trainer.eval.synthetic import CLASSIFY_DIR
from trainer.eval.zeroshot import ZeroShotResult, evaluate_zeroshot


@dataclass
class BeforeAfter:
    base_mmvp: MMVPResult
    post_mmvp: MMVPResult
    base_zeroshot: ZeroShotResult
    post_zeroshot: ZeroShotResult
    gate: GateDecision
    report: Path

    def manifest_eval(self) -> dict[str, Any]:
        """Numbers for ``ModelManifest.eval`` (the post-trained model's, with the base's beside)."""
        return {
            "mmvp": {
                "average": self.post_mmvp.average,
                "patterns": self.post_mmvp.patterns,
                "protocol": self.post_mmvp.protocol,
                "base_average": self.base_mmvp.average,
            },
            "zeroshot": {
                "top1": self.post_zeroshot.top1,
                "top5": self.post_zeroshot.top5,
                "base_top1": self.base_zeroshot.top1,
            },
            "gate": {"passed": self.gate.passed, "reason": self.gate.reason},
        }


def evaluate_before_after(
    base: Any,
    post: Any,
    benchmark_dir: Path | str,
    out_dir: Path | str,
    *,
    zeroshot_dir: Path | str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    device: str = "cpu",
    batch_size: int = 64,
    names: tuple[str, str] = ("base", "post-trained"),
    progress: Progress | None = None,
) -> BeforeAfter:
    """Evaluate two ClipBundles on one benchmark folder and write the report into ``out_dir``.

    ``progress(done, total)`` counts the four evaluations (0..4), enough for a job's status.
    """
    from trainer.eval.report import write_report

    benchmark_dir = Path(benchmark_dir)
    zeroshot_dir = Path(zeroshot_dir) if zeroshot_dir is not None else benchmark_dir / CLASSIFY_DIR
    out_dir = Path(out_dir)
    steps = iter(range(1, 5))

    def step() -> None:
        if progress:
            progress(next(steps), 4)

    options = {"device": device, "batch_size": batch_size}
    base_mmvp = evaluate_mmvp(base, benchmark_dir, **options)
    step()
    post_mmvp = evaluate_mmvp(post, benchmark_dir, **options)
    step()
    base_zs = evaluate_zeroshot(base, zeroshot_dir, **options)
    step()
    post_zs = evaluate_zeroshot(post, zeroshot_dir, **options)
    step()
    gate = zero_shot_gate(base_zs.top1, post_zs.top1, tolerance)
    post_mmvp.save(out_dir)
    base_mmvp.save(out_dir / "base")
    post_zs.save(out_dir)
    base_zs.save(out_dir, "zeroshot_base.json")
    report = write_report(
        out_dir, base_mmvp, post_mmvp, base_zeroshot=base_zs, post_zeroshot=post_zs, gate=gate, names=names
    )
    return BeforeAfter(base_mmvp, post_mmvp, base_zs, post_zs, gate, report)
