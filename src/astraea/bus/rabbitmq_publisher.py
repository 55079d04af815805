"""Publishing with publisher confirms, many publishes in flight at once.

One channel in confirm mode carries every stream message and broadcast of a bus. Publishes go
through the channel's aiormq layer with `wait=False`: aio-pika's `Exchange.publish` holds the
channel's lock until its frame is written out, which serialises concurrent publishers on the
socket, whereas here each takes the lock only to queue its frames and then waits for its own
confirm, so thousands can be in flight.

During an outage a publish waits for the reconnection, up to `outage_timeout`, and is then
sent again: a message whose confirm was lost with the connection may be stored twice, which
at-least-once delivery allows; the caller (a transport node) gets an error only when the bus
could not answer for the message in time, and refuses the device's message then.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq
import aiormq.abc
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic

from astraea.bus.base import BusError, shard_of
from astraea.bus.rabbitmq_link import BrokerUnavailable, Link, frames_of
from astraea.bus.rabbitmq_topology import (
    BROADCAST_EXCHANGE,
    declare_broadcasts,
    declare_stream,
    shard_queue,
)

logger = logging.getLogger(__name__)

_PERSISTENT = Basic.Properties(delivery_mode=2)
_TRANSIENT = Basic.Properties(delivery_mode=1)


class Publisher:
    def __init__(self, link: Link, *, outage_timeout: float) -> None:
        self._link = link
        self._outage_timeout = outage_timeout
        self._channel: aiormq.Channel | None = None
        self._connection: AbstractConnection | None = None
        self._declared: dict[str, asyncio.Task[None]] = {}  # per connection

    async def attach(self, connection: AbstractConnection) -> None:
        channel = await self._link.open_channel(
            connection, publisher_confirms=True, on_return_raises=True
        )
        self._link.watch(channel)
        await declare_broadcasts(channel)
        self._connection = connection
        self._channel = await frames_of(channel)

    def detach(self) -> None:
        """Declarations under way fail with the connection, and their publishers retry."""
        self._channel = None
        self._connection = None
        self._declared.clear()

    async def publish(self, stream: str, key: str, body: bytes) -> None:
        queue = shard_queue(stream, shard_of(key))
        await self._publish(body, routing_key=queue, stream=stream)

    async def broadcast(self, body: bytes) -> None:
        await self._publish(body, exchange=BROADCAST_EXCHANGE)

    async def _publish(
        self, body: bytes, *, exchange: str = "", routing_key: str = "", stream: str | None = None
    ) -> None:
        """Stream messages are persistent and mandatory (a missing queue is an error, not a
        silent drop); broadcasts are neither."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._outage_timeout
        while True:
            connection = await self._link.wait_up(deadline - loop.time())
            channel = self._channel
            assert channel is not None  # attached before the link is up
            try:
                if stream is not None:
                    await self._declare(stream)
                await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=_TRANSIENT if stream is None else _PERSISTENT,
                    mandatory=stream is not None,
                    wait=False,
                )
                return
            except DeliveryError as exc:  # returned unroutable, or nacked by the broker
                raise BusError(f"the broker refused a message for {routing_key!r}") from exc
            except Exception as exc:
                if not channel.is_closed:
                    raise BusError(f"publishing to {routing_key!r} failed") from exc
                # The connection's own close notice can lag far behind its channel's (seen
                # with many publishes in flight): reconnect now rather than wait for it.
                self._link.reset(connection, "the publishing channel closed")
                if loop.time() >= deadline:
                    raise BrokerUnavailable("connection lost while publishing") from exc
                logger.debug("publish interrupted by a lost connection; sending again")

    async def _declare(self, stream: str) -> None:
        """Declares the stream's queues once per connection, whoever publishes first: a
        message published before any consumer declared them must still be kept."""
        task = self._declared.get(stream)
        if task is None:
            assert self._connection is not None  # called with the channel of this connection
            task = self._declared[stream] = asyncio.create_task(
                self._declare_on(self._connection, stream)
            )
        try:
            await asyncio.shield(task)
        except Exception:
            if self._declared.get(stream) is task:
                del self._declared[stream]
            raise

    async def _declare_on(self, connection: AbstractConnection, stream: str) -> None:
        async with self._link.attempt(connection) as channel:
            await declare_stream(channel, stream)
