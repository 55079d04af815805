"""What the RabbitMQ bus declares on the broker, and the names every process agrees on.

Every declaration of one name uses the same flags, so that any process may declare first (a
mismatch would be a PRECONDITION_FAILED that closes the channel).
"""

from __future__ import annotations

import asyncio

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from astraea.bus.base import SHARD_COUNT

BROADCAST_EXCHANGE = "astraea.broadcast"

REPLY_TO = "amq.rabbitmq.reply-to"
"""Direct reply-to: replies go straight to the requesting channel, no reply queue to manage."""


def shard_queue(stream: str, shard: int) -> str:
    return f"astraea.{stream}.{shard}"


def lock_queue(stream: str, shard: int) -> str:
    """Exclusive to the connection of the consumer that holds the shard."""
    return f"astraea.{stream}.lock.{shard}"


def members_exchange(stream: str) -> str:
    """Where the consumers of a stream say which shards they hold."""
    return f"astraea.{stream}.members"


def endpoint_queue(endpoint: str) -> str:
    """Exclusive to the connection that serves the endpoint."""
    return f"astraea.endpoint.{endpoint}"


async def declare_stream(channel: AbstractChannel, stream: str) -> None:
    """The shard queues: durable, so a confirmed message survives a broker restart, and
    single-active-consumer, so that even two processes that both believed they hold a shard
    could not both consume it."""
    await asyncio.gather(
        *(
            channel.declare_queue(
                shard_queue(stream, shard),
                durable=True,
                arguments={"x-single-active-consumer": True},
            )
            for shard in range(SHARD_COUNT)
        )
    )


async def declare_broadcasts(channel: AbstractChannel) -> None:
    await channel.declare_exchange(BROADCAST_EXCHANGE, ExchangeType.FANOUT, durable=True)
