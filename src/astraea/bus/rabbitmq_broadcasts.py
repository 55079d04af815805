"""Receiving broadcasts: a queue of this process bound to the broadcast exchange.

The queue is exclusive and auto-delete, so it lives exactly as long as the subscription and
its connection. The broker delivers in each sender's order; deliveries go through an inbox to
one task that calls the handler one message at a time, because consumer callbacks may run
concurrently.
"""

from __future__ import annotations

import asyncio
import logging

import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractConnection

from astraea.bus import messages
from astraea.bus.base import BroadcastHandler
from astraea.bus.messages import BroadcastMessage
from astraea.bus.rabbitmq_link import Link, frames_of, stop_tasks
from astraea.bus.rabbitmq_topology import BROADCAST_EXCHANGE, declare_broadcasts

logger = logging.getLogger(__name__)


class Subscriber:
    def __init__(self, link: Link, handler: BroadcastHandler) -> None:
        self._link = link
        self._handler = handler
        self._channel: AbstractChannel | None = None
        self._inbox: asyncio.Queue[BroadcastMessage] = asyncio.Queue()
        self._worker = asyncio.create_task(self._work(), name="broadcast subscriber")

    async def attach(self, connection: AbstractConnection) -> None:
        channel = await self._link.open_channel(connection)
        self._link.watch(channel)
        await declare_broadcasts(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(BROADCAST_EXCHANGE)
        frames = await frames_of(channel)
        await frames.basic_consume(queue.name, self._on_delivery, no_ack=True)
        self._channel = channel

    def detach(self) -> None:
        self._channel = None

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await self._link.close_channel(channel)
        await stop_tasks(self._worker)

    async def _on_delivery(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        try:
            message = messages.decode(delivered.body)
        except messages.DecodeError as exc:
            logger.error("dropping an unreadable broadcast: %s", exc)
            return
        if not isinstance(message, BroadcastMessage):
            logger.error("dropping a %s sent as a broadcast", type(message).__name__)
            return
        self._inbox.put_nowait(message)

    async def _work(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                await self._handler(message)
            except Exception:  # one subscriber's failure is not the sender's
                logger.exception("broadcast subscriber failed on %s", type(message).__name__)
