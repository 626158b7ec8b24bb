"""Process-level options of the app: gc.freeze after the default model loads, FastAPI's
OpenTelemetry hooks off unless asked for."""

from __future__ import annotations

import gc
import inspect

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.main import create_app
from state.settings import Settings


def test_gc_freeze_after_startup_keeps_serving(serving_settings):
    settings = serving_settings.model_copy(update={"gc_freeze": True})
    gc.unfreeze()
    try:
        with TestClient(create_app(settings)) as client:
            assert gc.get_freeze_count() > 0  # the loaded model and the app are out of the GC's walk
            response = client.post("/v1/embeddings", json={"input": ["a red circle"]})
            assert response.status_code == 200
            garbage = [[]]
            garbage[0].append(garbage)  # a cycle made after the freeze is still collected
            del garbage
            assert gc.collect() > 0
    finally:
        gc.unfreeze()


def test_gc_freeze_is_off_when_asked(serving_settings):
    gc.unfreeze()
    with TestClient(create_app(serving_settings.model_copy(update={"gc_freeze": False}))):
        assert gc.get_freeze_count() == 0


@pytest.mark.skipif(
    "telemetry" not in inspect.signature(FastAPI.__init__).parameters, reason="FastAPI without telemetry"
)
def test_fastapi_telemetry_is_off_unless_diva_otel(tmp_path):
    quiet = create_app(Settings(home=tmp_path))
    assert not any(quiet._telemetry[k] for k in ("tracing", "metrics", "logs"))
    traced = create_app(Settings(home=tmp_path, otel=True))
    assert traced._telemetry["tracing"]
