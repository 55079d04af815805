"""One broker connection, kept up: connects with backoff, runs its owner's setup on every
(re)connection and its owner's teardown on every loss.

Our own loop rather than aio-pika's robust connection: a robust connection replays the
declarations it saw, exclusive ones included, and the shard locks and endpoint queues that
this process held may belong to another process by the time it reconnects. Re-running the
owner's setup lets the owner decide what to take again. A channel that the broker closes
under us (a protocol error, a consumer cancelled by the broker) resets the whole connection,
so that state is only ever rebuilt by that one setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from yarl import URL

from astraea.bus.base import BusError

logger = logging.getLogger(__name__)

HEARTBEAT = 10
"""AMQP heartbeat (s) unless the URL sets one: a silent network is noticed in ~2 of them."""


CLOSE_TIMEOUT = 2.0
"""Seconds a lost connection gets to close cleanly before it is abandoned."""


class BrokerUnavailable(BusError):
    """There is no connection to the broker (now), so nothing was sent."""


async def frames_of(channel: AbstractChannel) -> aiormq.Channel:
    """The channel's aiormq layer, where the traffic goes: its `basic_publish(wait=False)`
    queues a publish without holding the channel until it is written out, and its
    deliveries come without aio-pika's per-message wrapper."""
    return cast(aiormq.Channel, await channel.get_underlay_channel())


async def stop_tasks(*tasks: asyncio.Task[Any]) -> None:
    """Cancels `tasks` and waits for them to end, cancelling again as long as they run: on
    Python 3.11, `asyncio.wait_for` (which aiormq uses for every RPC) drops a cancellation
    that arrives just as the awaited frame does, and the task then goes on."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


Setup = Callable[[AbstractConnection], Awaitable[None]]


class Link:
    def __init__(
        self,
        url: str,
        name: str,
        setup: Setup,
        teardown: Callable[[], None],
        *,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        parsed = URL(url)
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=HEARTBEAT)
        self._url = parsed
        self.name = name
        self._setup = setup
        self._teardown = teardown
        self._backoff = backoff
        self._connection: AbstractConnection | None = None
        self._up = asyncio.Event()
        self._lost: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._opening = asyncio.Lock()
        self._watched: dict[AbstractChannel, Callable[[Any, BaseException | None], None]] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"link {self.name}")

    def is_up(self) -> bool:
        return self._connection is not None

    async def wait_up(self, timeout: float) -> AbstractConnection:
        """The connection, once there is one; BrokerUnavailable after `timeout` s without."""
        try:
            async with asyncio.timeout(max(timeout, 0)):
                while self._connection is None:
                    if self._closed:
                        break
                    await self._up.wait()
        except TimeoutError:
            pass
        if self._connection is None:
            raise BrokerUnavailable(f"{self.name}: no connection to the broker")
        return self._connection

    async def open_channel(
        self,
        connection: AbstractConnection,
        *,
        publisher_confirms: bool = False,
        on_return_raises: bool = False,
    ) -> AbstractChannel:
        """Every channel of the connection is opened here, one at a time with `attempt`s."""
        async with self._opening:
            channel = connection.channel(
                publisher_confirms=publisher_confirms, on_return_raises=on_return_raises
            )
            await channel.initialize()
            return channel

    @asynccontextmanager
    async def attempt(self, connection: AbstractConnection) -> AsyncIterator[AbstractChannel]:
        """A throwaway channel for an operation that the broker may refuse by closing the
        channel (an exclusive queue that another connection holds).

        No other channel is opened meanwhile: aiormq frees a channel's number as soon as the
        broker's Channel.Close arrives, before its Close-Ok is sent, and a Channel.Open
        reusing the number in between is a connection error for RabbitMQ ("second
        'channel.open' seen"). By the time the refusal reaches the caller, the Close-Ok is
        queued, so opening after it is safe."""
        async with self._opening, connection.channel(publisher_confirms=False) as channel:
            yield channel

    def watch(self, channel: AbstractChannel) -> None:
        """A close of `channel` that `close_channel` did not ask for resets the connection
        it was opened on (not a later one)."""
        lost = self._lost

        def closed(_channel: Any, exc: BaseException | None) -> None:
            if lost is not None and not lost.done():
                lost.set_result(f"a channel closed: {exc!r}")

        self._watched[channel] = closed
        channel.close_callbacks.add(closed)

    async def close_channel(self, channel: AbstractChannel) -> None:
        closed = self._watched.pop(channel, None)
        if closed is not None:
            channel.close_callbacks.discard(closed)
        with contextlib.suppress(Exception):
            await channel.close()

    def reset(self, connection: AbstractConnection, reason: str) -> None:
        """Drops `connection` if it is still the current one; the loop reconnects and the
        owner sets up again."""
        if connection is self._connection and self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
            self._connection = None  # nobody waits on it any more
            self._up.clear()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await stop_tasks(self._task)
            self._task = None
        self._up.set()  # wakes waiters, who find no connection

    def _on_connection_closed(self, _connection: Any, exc: BaseException | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(repr(exc))

    async def _run(self) -> None:
        delay = self._backoff[0]
        connected_before = False
        while True:
            connection = await self._connect()
            if connection is not None:
                if connected_before:
                    logger.warning("%s: reconnected to the broker", self.name)
                connected_before = True
                delay = self._backoff[0]
                reason = await self._serve(connection)
                logger.warning("%s: connection lost (%s); reconnecting", self.name, reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _connect(self) -> AbstractConnection | None:
        """A connection with the owner's setup done, or None after logging why not."""
        try:
            connection = await aio_pika.connect(
                self._url, client_properties={"connection_name": self.name}
            )
        except Exception as exc:  # refused, reset, authentication, timeout...
            logger.warning("%s: cannot connect to the broker: %r", self.name, exc)
            return None
        self._lost = asyncio.get_running_loop().create_future()
        connection.close_callbacks.add(self._on_connection_closed)
        try:
            await self._setup(connection)
        except asyncio.CancelledError:
            await self._drop(connection)
            raise
        except Exception:
            logger.warning("%s: setting up after connecting failed", self.name, exc_info=True)
            await self._drop(connection)
            return None
        if self._lost.done():  # lost during the setup
            await self._drop(connection)
            return None
        self._connection = connection
        self._up.set()
        return connection

    async def _serve(self, connection: AbstractConnection) -> str:
        """Waits for the connection to be lost, then tears down; the reason it was lost."""
        assert self._lost is not None
        try:
            return await self._lost
        finally:
            await self._drop(connection)

    async def _drop(self, connection: AbstractConnection) -> None:
        connection.close_callbacks.discard(self._on_connection_closed)
        if self._connection is connection:
            self._connection = None
            self._up.clear()
        self._watched.clear()
        self._teardown()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await connection.close()
