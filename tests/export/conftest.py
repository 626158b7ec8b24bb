"""Fixtures of the export tests: one tiny CLIP (random weights, built from a project config)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import write_registry_model


@pytest.fixture(scope="session")
def tiny_bundle():
    """``diva-tiny-vit`` with a non-trivial logit scale; shared read-only by the export tests."""
    import torch

    from trainer.backbones.factory import create_clip

    torch.manual_seed(0)
    bundle = create_clip("diva-tiny-vit")
    with torch.no_grad():
        bundle.model.logit_scale.fill_(2.5)
    return bundle


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory, tiny_bundle) -> Path:
    """A registry root holding ``tiny-clip``; shared, so tests must not write into it."""
    root = tmp_path_factory.mktemp("registry")
    write_registry_model(root, tiny_bundle)
    return root
