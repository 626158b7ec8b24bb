"""The learning rate is a pure function of the step: warm-up, then cosine to min_lr."""

from __future__ import annotations

from itertools import pairwise

import pytest

from trainer.train.schedule import lr_at, warmup_steps


def test_diva_schedule_shape():
    total, base = 4600, 1e-4
    warm = warmup_steps(total, 0.005)
    assert warm == 23
    lrs = [lr_at(s, total_steps=total, base_lr=base, warmup_fraction=0.005) for s in range(total)]
    assert lrs[0] == pytest.approx(base / 23)
    assert lrs[22] == pytest.approx(base)
    assert all(a <= b for a, b in pairwise(lrs[:23]))  # rising during warm-up
    assert all(a >= b for a, b in pairwise(lrs[23:]))  # falling after
    assert lrs[23 + (total - 23) // 2] == pytest.approx(base / 2, rel=1e-3)
    assert lrs[-1] < 1e-9 + base * 1e-6


def test_min_lr_and_no_warmup():
    assert lr_at(0, total_steps=10, base_lr=1.0, warmup_fraction=0.0) == 1.0
    assert lr_at(10, total_steps=10, base_lr=1.0, warmup_fraction=0.0, min_lr=0.1) == pytest.approx(0.1)
