"""Shared fixtures. Tests mirror the package tree: tests/trainer, tests/service, tests/worker, ..."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The tests build hundreds of apps in one process: gc.freeze() at each startup would keep every
# earlier app's cyclic garbage for good. tests/service/test_app_runtime_options.py turns it on.
os.environ.setdefault("DIVA_GC_FREEZE", "0")


@pytest.fixture
def diva_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private DIVA_HOME with fresh settings for the duration of one test."""
    from state.settings import get_settings

    home = tmp_path / "diva-home"
    home.mkdir()
    monkeypatch.setenv("DIVA_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread per test module: on a shared 2-core box, two threads contend and run
    ~10x slower. Code under test may change it (the serving runtime sets its own); each module
    starts again from one, and the count found before is restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are opt-in (-m gpu) and skip cleanly where no CUDA device exists."""
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
