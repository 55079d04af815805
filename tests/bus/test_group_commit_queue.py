"""The in-process group-commit queue: batching, order, failures and stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from astraea.bus.inproc import GroupCommitQueue


class Recorder:
    """A handler that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, batch: Sequence[int]) -> list[int]:
        self.batches.append(list(batch))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if -1 in batch:
                raise RuntimeError("commit failed")
            return [n * 10 for n in batch]
        finally:
            self.running -= 1


async def test_requests_arriving_together_share_a_batch_and_keep_order() -> None:
    handler = Recorder()
    queue: GroupCommitQueue[int, int] = GroupCommitQueue(handler)
    queue.start()
    try:
        handler.gate.clear()
        first = asyncio.ensure_future(queue.submit(0))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(queue.submit(n)) for n in range(1, 5)]
        await asyncio.sleep(0.01)
        handler.gate.set()
        assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40]
        assert handler.batches == [[0], [1, 2, 3, 4]]
        assert handler.most_running == 1
    finally:
        await queue.stop()


async def test_one_batch_at_a_time() -> None:
    handler = Recorder()
    queue: GroupCommitQueue[int, int] = GroupCommitQueue(handler)
    queue.start()
    try:
        handler.gate.clear()
        submitted = []
        for n in range(6):
            submitted.append(asyncio.ensure_future(queue.submit(n)))
            await asyncio.sleep(0.01)
        assert handler.running == 1
        handler.gate.set()
        assert await asyncio.gather(*submitted) == [n * 10 for n in range(6)]
        assert handler.batches == [[0], [1, 2, 3, 4, 5]]
        assert handler.most_running == 1
    finally:
        await queue.stop()


async def test_a_failed_batch_fails_only_its_own_requests() -> None:
    handler = Recorder()
    queue: GroupCommitQueue[int, int] = GroupCommitQueue(handler)
    queue.start()
    try:
        with pytest.raises(RuntimeError, match="commit failed"):
            await queue.submit(-1)
        assert await queue.submit(7) == 70
    finally:
        await queue.stop()


async def test_stop_aborts_waiting_and_in_flight_requests() -> None:
    handler = Recorder()
    queue: GroupCommitQueue[int, int] = GroupCommitQueue(handler)
    queue.start()
    handler.gate.clear()
    submitted = []
    for n in range(4):
        submitted.append(asyncio.ensure_future(queue.submit(n)))
        await asyncio.sleep(0.01)
    await queue.stop()
    for future in submitted:
        with pytest.raises(ConnectionAbortedError):
            await future
    with pytest.raises(ConnectionAbortedError):
        await queue.submit(9)
