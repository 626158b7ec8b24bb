"""The Python client (sync + async) and the CLI verbs against a live server."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from serving_helpers import TINY_ID, LiveServer, png_bytes
from typer.testing import CliRunner

from cli.main import app as cli
from service.client import AsyncDivaClient, DivaApiError, DivaClient
from service.main import create_app
from state.settings import Settings


@pytest.fixture(scope="module")
def live(serving_home):
    home, _ = serving_home
    settings = Settings(home=home, default_model=TINY_ID, device="cpu", api_keys=["k"])
    with LiveServer(create_app(settings)) as server:
        yield server


def test_sync_and_async_clients_agree(live, tmp_path):
    image_path = tmp_path / "a.png"
    image_path.write_bytes(png_bytes(11))
    with DivaClient(live.url, api_key="k") as client:
        assert any(card["id"] == TINY_ID for card in client.models())
        texts = client.embed_texts(["a cube", "a ball"])
        images = client.embed_images([image_path, png_bytes(12)])
        ranked = client.classify([image_path], ["cube", "ball", "cone"], top_k=2)
        with pytest.raises(DivaApiError) as caught:
            client.embed_texts(["x"], model="missing")
        assert caught.value.status == 404 and caught.value.type == "model_not_found"
    assert texts.shape == (2, 32) and images.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert len(ranked[0]) == 2 and ranked[0][0][1] >= ranked[0][1][1]

    async def run_async():
        async with AsyncDivaClient(live.url, api_key="k") as client:
            return await asyncio.gather(
                client.embed_texts(["a cube", "a ball"]), client.embed_images([image_path, png_bytes(12)])
            )

    async_texts, async_images = asyncio.run(run_async())
    np.testing.assert_allclose(async_texts, texts, atol=1e-6)
    np.testing.assert_allclose(async_images, images, atol=1e-6)


def test_cli_verbs(live, tmp_path):
    runner = CliRunner()
    image_path = tmp_path / "b.png"
    image_path.write_bytes(png_bytes(13))
    common = ["--url", live.url, "--api-key", "k"]
    listed = runner.invoke(cli, ["models", "list", *common])
    assert listed.exit_code == 0 and TINY_ID in listed.output
    embedded = runner.invoke(cli, ["embed", "a cube", "--image", str(image_path), *common])
    assert embedded.exit_code == 0, embedded.output
    rows = [json.loads(line) for line in embedded.output.splitlines()]
    assert [row["input"] for row in rows] == ["a cube", str(image_path)] and len(rows[0]["embedding"]) == 32
    ranked = runner.invoke(cli, ["classify", str(image_path), "-l", "cube", "-l", "ball", *common])
    assert ranked.exit_code == 0 and ranked.output.startswith(f"{image_path}: ")
    refused = runner.invoke(cli, ["models", "list", "--url", live.url, "--api-key", "wrong"])
    assert refused.exit_code == 1 and "authentication_error" in refused.output


def test_models_pull_writes_a_served_registry_folder(diva_home):
    result = CliRunner().invoke(cli, ["models", "pull", "diva-tiny-vit", "--id", "pulled-tiny"])
    assert result.exit_code == 0, result.output
    from service.inference.registry import ModelRegistry

    registry = ModelRegistry(Settings(home=diva_home), roots=[diva_home / "models"])
    spec = registry.spec("pulled-tiny")
    assert spec.manifest.embed_dim == 32 and spec.manifest.base == "diva-tiny-vit"
    assert registry.get("pulled-tiny").io.context_length == 16
    again = CliRunner().invoke(cli, ["models", "pull", "diva-tiny-vit", "--id", "pulled-tiny"])
    assert again.exit_code != 0 and "already exists" in again.output
