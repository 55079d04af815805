"""In-process bus pieces for `astraea up`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Reply = TypeVar("Reply")


class GroupCommitQueue(Generic[Request, Reply]):
    """Hands requests to `handler` in batches, in arrival order, one batch at a time.

    Whatever arrives while a batch is being handled forms the next one, so under load one
    durable commit serves many requests (group commit) and when idle a lone request is
    handled at once. Arrival order is kept, which keeps each device's order.
    """

    def __init__(
        self,
        handler: Callable[[Sequence[Request]], Awaitable[Sequence[Reply]]],
        *,
        max_batch: int = 512,
    ) -> None:
        self._handler = handler
        self._max_batch = max_batch
        self._pending: list[tuple[Request, asyncio.Future[Reply]]] = []
        self._handling: list[tuple[Request, asyncio.Future[Reply]]] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for _, future in [*self._handling, *self._pending]:  # nobody will answer them now
            if not future.done():
                future.set_exception(ConnectionAbortedError("the platform is stopping"))
        self._handling = []
        self._pending.clear()

    async def submit(self, request: Request) -> Reply:
        if self._worker is None:
            raise ConnectionAbortedError("the queue is not running")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._handling = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._handle(batch)
                self._handling = []

    async def _handle(self, batch: list[tuple[Request, asyncio.Future[Reply]]]) -> None:
        try:
            replies = await self._handler([request for request, _ in batch])
        except Exception as exc:  # one failed commit fails its batch, not the queue
            logger.exception("batch of %d failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(reply)
