"""Dynamic batching: many small requests become few large forward passes.

One :class:`Batcher` per (model, runtime, modality). Requests put their items in a bounded
queue and await one future per item; a single task drains the queue, waiting up to
``max_wait_s`` for a batch to fill to ``max_batch``, and runs the forward pass in the model's
inference thread, so the event loop stays free. While one batch runs, the next one gathers
(the queue fills during the forward pass), which is where the speed-up under load comes from.
A full queue raises :class:`QueueFull` (HTTP 429 with Retry-After). The task exits when the
queue is empty, so an evicted model leaves nothing running.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np


class QueueFull(RuntimeError):
    """Too many items are waiting; ``retry_after_s`` is a hint for the client."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


BatchObserver = Callable[[int, float], None]


class Batcher:
    """Gather items -> ``stack`` -> ``forward`` in ``executor`` -> one result row per item.

    Items are numpy arrays by default; tensor items (GPU-decoded images) pass ``stack=torch.stack``.
    """

    def __init__(
        self,
        forward: Callable[[Any], np.ndarray],
        *,
        executor: Executor,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 1024,
        on_batch: BatchObserver | None = None,
        on_depth: Callable[[int], None] | None = None,
        stack: Callable[[list[Any]], Any] = np.stack,
    ) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self.forward = forward
        self.stack = stack
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._queue: deque[tuple[Any, asyncio.Future[np.ndarray]]] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, items: np.ndarray | list[Any]) -> np.ndarray:
        """Encode ``items`` (first axis = items) as part of whatever batches form; rows in order."""
        count = len(items)
        if count == 0:
            raise ValueError("nothing to encode")
        if len(self._queue) + count > self.max_queue:
            raise QueueFull(f"the inference queue is full ({len(self._queue)} items waiting); retry shortly")
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
        futures = [loop.create_future() for _ in range(count)]
        self._queue.extend(zip(items, futures))
        self._report_depth()
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        try:
            rows = await asyncio.gather(*futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return np.stack(rows)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._arrived is not None
        while self._queue:
            deadline = loop.time() + self.max_wait_s
            while len(self._queue) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._report_depth()
            batch = [(item, future) for item, future in batch if not future.done()]
            if not batch:
                continue
            stacked = self.stack([item for item, _ in batch])
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.forward, stacked)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self._on_batch:
                self._on_batch(len(batch), time.perf_counter() - started)
            for row, (_, future) in zip(out, batch):
                if not future.done():
                    future.set_result(row)

    def _report_depth(self) -> None:
        if self._on_depth:
            self._on_depth(len(self._queue))
