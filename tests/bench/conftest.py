"""Fixtures that load the ``bench/`` scripts (scripts, not a package) and run their ``main``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def load_bench() -> Callable[[str], ModuleType]:
    """``load_bench("x.py")`` is ``bench/x.py`` as a module; torch's threads, which the scripts
    set, are restored afterwards."""
    previous = torch.get_num_threads()

    def load(script: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", BENCH_DIR / script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    yield load
    torch.set_num_threads(previous)


@pytest.fixture
def run_bench(monkeypatch) -> Callable[..., None]:
    """``run_bench(module, *args)`` runs the script's ``main`` with ``args`` as its command line."""

    def run(bench: ModuleType, *args: str) -> None:
        monkeypatch.setattr(sys, "argv", [f"{bench.__name__}.py", *args])
        bench.main()

    return run
