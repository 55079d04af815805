"""The bus over RabbitMQ (3.10 or later), for roles running as separate processes.

Queues and exchanges (`rabbitmq_topology`): a stream is `SHARD_COUNT` durable
single-active-consumer queues `astraea.<stream>.<shard>`; an endpoint is the exclusive queue
`astraea.endpoint.<endpoint>`; broadcasts go through the fanout exchange `astraea.broadcast`.

Connections: one for publishing, requests, serving and broadcasts (`rabbitmq_publisher`,
`rabbitmq_requests`, `rabbitmq_broadcasts`), and one per stream consumer
(`rabbitmq_streams`), whose shard locks are exclusive to it (`rabbitmq_shards`). Each is kept up
by its own reconnect loop (`rabbitmq_link`), which sets everything up again after a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from aio_pika.abc import AbstractConnection

from astraea.bus import messages
from astraea.bus.base import (
    BatchHandler,
    BroadcastHandler,
    BusError,
    CommandHandler,
    EndpointTaken,
    ShardTaken,
    Stream,
    Subscription,
)
from astraea.bus.messages import BroadcastMessage, Command, CommandResult
from astraea.bus.rabbitmq_broadcasts import Subscriber
from astraea.bus.rabbitmq_link import BrokerUnavailable, Link
from astraea.bus.rabbitmq_publisher import Publisher
from astraea.bus.rabbitmq_requests import Requester, Server
from astraea.bus.rabbitmq_shards import ShardTimings
from astraea.bus.rabbitmq_streams import StreamConsumer

__all__ = ["BrokerUnavailable", "RabbitMqBus", "ShardTimings"]

logger = logging.getLogger(__name__)

M = TypeVar("M")

RETRY_DELAY = 0.5  # seconds before a failed batch is handed again
DEFAULT_SHARD_TIMINGS = ShardTimings()


class RabbitMqBus:
    def __init__(
        self,
        url: str,
        name: str,
        *,
        connect_timeout: float = 10.0,
        outage_timeout: float = 5.0,
        retry_delay: float = RETRY_DELAY,
        shard_timings: ShardTimings = DEFAULT_SHARD_TIMINGS,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        """`name` names this process's connections on the broker. `outage_timeout` bounds
        how long publishing and subscribing wait for a lost connection to come back."""
        self._url = url
        self._name = name
        self._connect_timeout = connect_timeout
        self._outage_timeout = outage_timeout
        self._retry_delay = retry_delay
        self._shard_timings = shard_timings
        self._backoff = backoff
        self._link = Link(
            url, f"astraea {name}", self._on_connected, self._on_lost, backoff=backoff
        )
        self._publisher = Publisher(self._link, outage_timeout=outage_timeout)
        self._requester = Requester(self._link)
        self._servers: dict[str, Server] = {}
        self._serving: set[str] = set()  # attached or being attached
        self._subscribers: set[Subscriber] = set()
        self._consumers: set[StreamConsumer[Any]] = set()
        self._started = False

    async def start(self) -> None:
        """Raises BrokerUnavailable when no connection could be made in `connect_timeout`."""
        self._link.start()
        try:
            await self._link.wait_up(self._connect_timeout)
        except BaseException:
            await self._link.close()
            raise
        self._started = True

    async def close(self) -> None:
        self._started = False
        await asyncio.gather(*(consumer.cancel() for consumer in list(self._consumers)))
        await asyncio.gather(*(server.close() for server in list(self._servers.values())))
        await asyncio.gather(*(subscriber.close() for subscriber in list(self._subscribers)))
        self._consumers.clear()
        self._servers.clear()
        self._serving.clear()
        self._subscribers.clear()
        await self._link.close()

    def is_healthy(self) -> bool:
        return self._link.is_up() and all(c.is_healthy() for c in self._consumers)

    def shards(self, stream: Stream[Any]) -> frozenset[int]:
        """The shards of `stream` that this bus's consumers are consuming now."""
        return frozenset[int]().union(
            *(c.shards for c in self._consumers if c.stream_name == stream.name)
        )

    async def publish(self, stream: Stream[M], key: str, message: M) -> None:
        self._require_started()
        body = messages.encode(cast(messages.Message, message))
        await self._publisher.publish(stream.name, key, body)

    async def consume(
        self,
        stream: Stream[M],
        handler: BatchHandler[M],
        *,
        max_batch: int = 512,
        on_taken: ShardTaken | None = None,
    ) -> Subscription:
        self._require_started()
        consumer = StreamConsumer(
            self._url,
            self._name,
            stream,
            handler,
            max_batch=max_batch,
            on_taken=on_taken,
            retry_delay=self._retry_delay,
            timings=self._shard_timings,
            backoff=self._backoff,
        )
        await consumer.start(self._connect_timeout)
        self._consumers.add(consumer)
        return _Registration(consumer.cancel, lambda: self._consumers.discard(consumer))

    async def request(self, endpoint: str, command: Command, *, timeout: float) -> CommandResult:
        self._require_started()
        return await self._requester.request(endpoint, command, timeout=timeout)

    async def serve(self, endpoint: str, handler: CommandHandler) -> Subscription:
        self._require_started()
        if endpoint in self._serving:
            raise EndpointTaken(f"{endpoint!r} is already served by this process")
        self._serving.add(endpoint)
        server = Server(self._link, endpoint, handler)
        try:
            await server.attach(await self._link.wait_up(self._outage_timeout))
        except BaseException:
            self._serving.discard(endpoint)
            raise
        self._servers[endpoint] = server

        def forget() -> None:
            self._servers.pop(endpoint, None)
            self._serving.discard(endpoint)

        return _Registration(server.close, forget)

    async def broadcast(self, message: BroadcastMessage) -> None:
        self._require_started()
        await self._publisher.broadcast(messages.encode(message))

    async def subscribe(self, handler: BroadcastHandler) -> Subscription:
        self._require_started()
        subscriber = Subscriber(self._link, handler)
        try:
            await subscriber.attach(await self._link.wait_up(self._outage_timeout))
        except BaseException:
            await subscriber.close()
            raise
        self._subscribers.add(subscriber)
        return _Registration(subscriber.close, lambda: self._subscribers.discard(subscriber))

    def _require_started(self) -> None:
        if not self._started:
            raise BusError("the bus is not started")

    async def _on_connected(self, connection: AbstractConnection) -> None:
        await self._publisher.attach(connection)
        await self._requester.attach(connection)
        for server in list(self._servers.values()):
            try:
                await server.attach(connection)
            except EndpointTaken:  # taken while we were away; tried again at the next connection
                logger.error("%s: %s is served elsewhere now", self._name, server.endpoint)
        for subscriber in list(self._subscribers):
            await subscriber.attach(connection)

    def _on_lost(self) -> None:
        self._publisher.detach()
        self._requester.detach()
        for server in self._servers.values():
            server.detach()
        for subscriber in self._subscribers:
            subscriber.detach()


class _Registration:
    def __init__(self, close: Callable[[], Awaitable[None]], forget: Callable[[], None]) -> None:
        self._close: Callable[[], Awaitable[None]] | None = close
        self._forget = forget

    async def cancel(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            self._forget()
            await close()
