"""The batcher gathers concurrent items into shared forward passes and keeps their order."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.inference.batcher import Batcher, QueueFull


class Recorder:
    """A forward pass that doubles its input and records batch sizes (and its thread)."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and (batch == self.fail_on).any():
            raise ValueError("poisoned batch")
        return batch * 2


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    forward = Recorder()
    executor = ThreadPoolExecutor(1, "infer")

    async def main():
        batcher = Batcher(forward, executor=executor, max_batch=8, max_wait_s=0.05)
        requests = [np.full((n, 3), float(i)) for i, n in enumerate([1, 2, 3, 1, 1, 4])]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for request, result in zip(requests, results):
            np.testing.assert_array_equal(result, request * 2)

    run(main())
    assert sum(forward.sizes) == 12
    assert max(forward.sizes) <= 8
    assert len(forward.sizes) < 6  # at least two requests shared a forward pass
    assert forward.threads == {"infer_0"}


def test_batch_of_one_when_max_batch_is_one():
    forward = Recorder()

    async def main():
        batcher = Batcher(forward, executor=ThreadPoolExecutor(1), max_batch=1, max_wait_s=0.01)
        await asyncio.gather(*(batcher.submit(np.ones((1, 2))) for _ in range(5)))

    run(main())
    assert forward.sizes == [1, 1, 1, 1, 1]


def test_full_queue_raises_and_errors_reach_only_their_batch():
    forward = Recorder(fail_on=-1.0)

    async def main():
        batcher = Batcher(forward, executor=ThreadPoolExecutor(1), max_batch=4, max_wait_s=0.0, max_queue=4)
        with pytest.raises(QueueFull):
            await batcher.submit(np.zeros((5, 2)))
        with pytest.raises(ValueError, match="poisoned"):
            await batcher.submit(np.full((2, 2), -1.0))
        np.testing.assert_array_equal(await batcher.submit(np.ones((3, 2))), np.full((3, 2), 2.0))
        assert batcher.depth == 0

    run(main())


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(lambda x: x, executor=ThreadPoolExecutor(1), max_batch=0)


def test_a_batch_closes_when_the_loop_goes_quiet_not_at_the_wait():
    """Requests that arrive together share one pass, and nobody waits for a batch that will not
    fill: with a 30 s wait both finish at once (wait_for's 10 s bound would fail otherwise)."""
    forward = Recorder()

    async def main():
        batcher = Batcher(forward, executor=ThreadPoolExecutor(1), max_batch=32, max_wait_s=30.0)
        together = [np.full((n, 2), float(n)) for n in (1, 2, 3, 1, 5)]
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(r) for r in together)), 10)
        for request, result in zip(together, results):
            np.testing.assert_array_equal(result, request * 2)
        lone = await asyncio.wait_for(batcher.submit(np.ones((1, 2))), 10)
        np.testing.assert_array_equal(lone, np.full((1, 2), 2.0))

    run(main())
    assert forward.sizes == [12, 1]


def test_items_arriving_while_a_batch_runs_form_the_next_one():
    gate = threading.Event()
    sizes: list[int] = []

    def slow_forward(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        gate.wait(10)
        return batch

    async def main():
        batcher = Batcher(slow_forward, executor=ThreadPoolExecutor(1), max_batch=4, max_wait_s=30.0)
        first = asyncio.ensure_future(batcher.submit(np.zeros((1, 2))))
        while not sizes:  # the first pass is running
            await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(batcher.submit(np.ones((1, 2)))) for _ in range(6)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 10)

    run(main())
    assert sizes == [1, 4, 2]  # the six queued during the first pass: a full batch, then the rest
