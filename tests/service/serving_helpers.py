"""Helpers for the serving tests: a tiny CLIP in a temporary registry, images, a live server."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

TINY_ID = "tiny-clip"


def make_tiny_model(models_dir: Path, model_id: str = TINY_ID, seed: int = 0):
    """Write a random tiny CLIP in registry layout; return its bundle (for parity checks)."""
    import torch

    from trainer.backbones.factory import create_clip, write_model_folder

    torch.manual_seed(seed)
    bundle = create_clip("diva-tiny-vit")
    write_model_folder(
        bundle, models_dir, model_id, patch_size=8, recipe="test", description="random tiny CLIP for tests"
    )
    return bundle


def png_bytes(seed: int, size: int = 48, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def photo_jpeg(seed: int, size: tuple[int, int] = (90, 70)) -> bytes:
    """A smooth picture (JPEG's natural input) so resampling differences stay small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    channels = [np.sin(x / rng.uniform(5, 15) + c) * np.cos(y / rng.uniform(5, 15)) for c in range(3)]
    pixels = ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def b64(data: bytes, uri: bool = False) -> str:
    text = base64.b64encode(data).decode()
    return f"data:image/png;base64,{text}" if uri else text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving an app in a background thread on a free port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
