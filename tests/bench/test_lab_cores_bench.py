"""The cores benchmark runs each way of using two cores in its own spawned processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = str(Path(__file__).resolve().parents[2] / "bench" / "lab_cores.py")


def test_each_mode_reports_a_throughput_compared_with_threads():
    # A script run, not an imported module: spawned processes re-import the script by its path.
    done = subprocess.run(
        [sys.executable, SCRIPT, "--cores", "2", "--batch", "2", "--steps", "1", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["cores"] == 2 and payload["layout"] == "shipped"
    assert set(payload["images_per_second"]) == {"threads", "ddp", "independent"}
    assert all(rate > 0 for rate in payload["images_per_second"].values())


def test_a_batch_the_cores_cannot_split_is_refused():
    done = subprocess.run(
        [sys.executable, SCRIPT, "--cores", "2", "--batch", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "divide --batch" in done.stderr
