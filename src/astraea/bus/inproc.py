"""The bus within one process (`astraea up`): asyncio, no broker.

A stream is a queue in memory, and `publish` returns once a consumer's handler has returned
for the batch holding the message: the consumer's own commit is what makes the message
durable here, so the transport acknowledges a device only after ingestion stored its message,
exactly as when the transport called ingestion directly. Whatever arrives while a batch is
being handled forms the next one (group commit): under load one commit serves many messages,
when idle a lone message is handled at once.

One consumer of a stream is active at a time and takes every key; the others stand by and
take over, unacknowledged messages first, when it is cancelled. Within one process that keeps
per-key order trivially, and one consumer is all `astraea up` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from astraea.bus.base import (
    SHARD_COUNT,
    BatchHandler,
    BroadcastHandler,
    CommandHandler,
    EndpointTaken,
    EndpointUnavailable,
    RequestTimeout,
    ShardTaken,
    Stream,
)
from astraea.bus.messages import BroadcastMessage, Command, CommandResult

logger = logging.getLogger(__name__)

M = TypeVar("M")

RETRY_DELAY = 0.5  # seconds before a failed batch is handed again


class InprocBus:
    def __init__(self, *, retry_delay: float = RETRY_DELAY) -> None:
        self._retry_delay = retry_delay
        self._streams: dict[str, _Stream[Any]] = {}
        self._endpoints: dict[str, CommandHandler] = {}
        self._subscribers: list[BroadcastHandler] = []
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def close(self) -> None:
        self._running = False
        for stream in self._streams.values():
            await stream.close()
        self._streams.clear()
        self._endpoints.clear()
        self._subscribers.clear()

    def is_healthy(self) -> bool:
        return self._running

    async def publish(self, stream: Stream[M], key: str, message: M) -> None:
        if not self._running:
            raise ConnectionAbortedError("the bus is not running")
        await self._stream(stream).publish(message)

    async def consume(
        self,
        stream: Stream[M],
        handler: BatchHandler[M],
        *,
        max_batch: int = 512,
        on_taken: ShardTaken | None = None,
    ) -> _Consumer[M]:
        consumer = _Consumer(self._stream(stream), handler, max_batch, self._retry_delay, on_taken)
        consumer.stream.join(consumer)
        return consumer

    async def request(self, endpoint: str, command: Command, *, timeout: float) -> CommandResult:
        handler = self._endpoints.get(endpoint)
        if handler is None:
            raise EndpointUnavailable(f"nobody serves {endpoint!r}")
        try:
            return await asyncio.wait_for(handler(command), timeout)
        except TimeoutError:
            raise RequestTimeout(f"{endpoint!r} did not answer in {timeout} s") from None

    async def serve(self, endpoint: str, handler: CommandHandler) -> _Registration:
        if endpoint in self._endpoints:
            raise EndpointTaken(f"{endpoint!r} is already served")
        self._endpoints[endpoint] = handler
        return _Registration(lambda: self._endpoints.pop(endpoint, None))

    async def broadcast(self, message: BroadcastMessage) -> None:
        for handler in list(self._subscribers):
            try:
                await handler(message)
            except Exception:  # one subscriber's failure is not the sender's
                logger.exception("broadcast subscriber failed on %s", type(message).__name__)

    async def subscribe(self, handler: BroadcastHandler) -> _Registration:
        self._subscribers.append(handler)
        return _Registration(lambda: self._subscribers.remove(handler))

    def _stream(self, stream: Stream[M]) -> _Stream[M]:
        found = self._streams.get(stream.name)
        if found is None:
            found = self._streams[stream.name] = _Stream()
        return found


class _Registration:
    def __init__(self, remove: Any) -> None:
        self._remove = remove

    async def cancel(self) -> None:
        if self._remove is not None:
            with contextlib.suppress(ValueError):
                self._remove()
            self._remove = None


@dataclass(slots=True)
class _Pending(Generic[M]):
    message: M
    acked: asyncio.Future[None]


@dataclass(slots=True)
class _Stream(Generic[M]):
    pending: deque[_Pending[M]] = field(default_factory=deque)
    consumers: list[_Consumer[M]] = field(default_factory=list)

    async def publish(self, message: M) -> None:
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(message, acked))
        if self.consumers:
            self.consumers[0].wake()
        await acked

    def join(self, consumer: _Consumer[M]) -> None:
        self.consumers.append(consumer)
        if len(self.consumers) == 1:
            consumer.activate()

    def leave(self, consumer: _Consumer[M], unacked: list[_Pending[M]]) -> None:
        """`unacked` goes back to the head, so the next consumer takes it first."""
        was_active = bool(self.consumers) and self.consumers[0] is consumer
        self.consumers.remove(consumer)
        self.pending.extendleft(reversed(unacked))
        if was_active and self.consumers:
            self.consumers[0].activate()

    async def close(self) -> None:
        for consumer in list(self.consumers):
            await consumer.cancel()
        for item in self.pending:  # nobody will handle them now
            if not item.acked.done():
                item.acked.set_exception(ConnectionAbortedError("the bus is closing"))
        self.pending.clear()


class _Consumer(Generic[M]):
    def __init__(
        self,
        stream: _Stream[M],
        handler: BatchHandler[M],
        max_batch: int,
        retry_delay: float,
        on_taken: ShardTaken | None,
    ) -> None:
        self.stream = stream
        self._handler = handler
        self._on_taken = on_taken
        self._max_batch = max_batch
        self._retry_delay = retry_delay
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_hand: list[_Pending[M]] = []
        self._stopped = asyncio.Event()

    def activate(self) -> None:
        """Takes every shard: the active consumer has them all."""
        if self._on_taken is not None:
            for shard in range(SHARD_COUNT):
                self._on_taken(shard)
        self._task = asyncio.create_task(self._run(), name="inproc consumer")

    def wake(self) -> None:
        self._wakeup.set()

    async def cancel(self) -> None:
        """Finishes the batch in hand (its handler runs to the end), then leaves."""
        if self not in self.stream.consumers:
            return
        self._stopped.set()
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self.stream.leave(self, self._in_hand)
        self._in_hand = []

    async def _run(self) -> None:
        pending = self.stream.pending
        while not self._stopped.is_set():
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            count = min(len(pending), self._max_batch)
            self._in_hand = [pending.popleft() for _ in range(count)]
            if not await self._handle(self._in_hand):
                return  # stopping with the batch unacknowledged: the next consumer takes it
            self._in_hand = []

    async def _handle(self, batch: list[_Pending[M]]) -> bool:
        """Hands the batch until its handler returns, then acknowledges it; False when the
        consumer stops first."""
        messages: Sequence[M] = [item.message for item in batch]
        while True:
            try:
                await self._handler(messages)
                break
            except Exception:  # storage trouble, expected to pass: hand the batch again
                logger.exception("handling a batch of %d failed; retrying", len(batch))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self._retry_delay)
                if self._stopped.is_set():
                    return False
        for item in batch:
            if not item.acked.done():
                item.acked.set_result(None)
        return True
