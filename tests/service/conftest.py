"""Serving fixtures: a tiny CLIP written into a temporary registry and an app around it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serving_helpers import TINY_ID, make_tiny_model


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory):
    """A DIVA_HOME whose registry holds the tiny model; returns (home, bundle)."""
    home = tmp_path_factory.mktemp("serving-home")
    bundle = make_tiny_model(home / "models")
    return home, bundle


@pytest.fixture
def serving_settings(serving_home):
    from state.settings import Settings

    home, _ = serving_home
    return Settings(home=home, default_model=TINY_ID, device="cpu")


@pytest.fixture
def client(serving_settings) -> Iterator:
    from fastapi.testclient import TestClient

    from service.main import create_app

    with TestClient(create_app(serving_settings)) as test_client:
        yield test_client
