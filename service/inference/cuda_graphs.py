"""CUDA graphs for the image tower: one launch per batch instead of ~1,000 Python op calls.

Why: in the gateway the forward pass shares one Python interpreter with HTTP parsing and image
decoding. Eager PyTorch dispatches every op from Python under the GIL, so under load the GPU
waits for the CPU (measured on an H200: 46% of the tower-alone rate end to end, worse with more
decoding threads). A captured graph replays the whole forward from a single call.

Batches are padded up to the next captured size (powers of two up to ``max_batch``); the
padding rows hold stale data, which cannot leak into real rows because a ViT treats every image
of a batch independently (no batch statistics). Off by default: ``DIVA_CUDA_GRAPHS=1``.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable

import torch

log = logging.getLogger("diva.cuda_graphs")


def bucket_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to ``max_batch`` (itself included)."""
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


class GraphedTower:
    """Replays captured graphs of ``forward`` for inputs [N, *item_shape] with N <= max_batch."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        item_shape: tuple[int, ...],
        *,
        device: torch.device,
        dtype: torch.dtype,
        max_batch: int,
    ) -> None:
        self.sizes = bucket_sizes(max_batch)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        pool = None
        with torch.inference_mode():
            for size in sorted(self.sizes, reverse=True):  # largest first: the shared pool fits all
                static_in = torch.zeros(size, *item_shape, device=device, dtype=dtype)
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(2):  # warm-up outside the graph (cuBLAS handles, autotuning)
                        forward(static_in)
                torch.cuda.current_stream(device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: decoding threads may use CUDA while a lazily loaded model captures
                with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                    static_out = forward(static_in)
                pool = graph.pool()
                self.graphs[size] = (graph, static_in, static_out)
        torch.cuda.synchronize(device)
        log.info("captured CUDA graphs", extra={"sizes": self.sizes})

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        if count > self.sizes[-1]:
            return torch.cat([self(chunk) for chunk in batch.split(self.sizes[-1])])
        size = self.sizes[bisect_left(self.sizes, count)]
        graph, static_in, static_out = self.graphs[size]
        static_in[:count].copy_(batch)
        graph.replay()
        return static_out[:count].clone()
