"""Requests to a named endpoint, and serving them.

An endpoint is the queue `astraea.endpoint.<endpoint>`, exclusive to the connection of its
server and deleted with it, so a server that dies takes its endpoint along, and a request to it
is returned as unroutable (mandatory publish) within one round trip: EndpointUnavailable, not
a wait for the timeout. A request carries its timeout as its expiration, so that a server that
is slow to pick it up does not carry out a command whose caller has given up. Replies use
direct reply-to on the requesting channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import aiormq
import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelLockedResource, PublishError
from pamqp.commands import Basic

from astraea.bus import messages
from astraea.bus.base import (
    BusError,
    CommandHandler,
    EndpointTaken,
    EndpointUnavailable,
    RequestTimeout,
)
from astraea.bus.messages import Command, CommandResult
from astraea.bus.rabbitmq_link import Link, frames_of, stop_tasks
from astraea.bus.rabbitmq_topology import REPLY_TO, endpoint_queue

logger = logging.getLogger(__name__)


class _ConnectionLost(Exception):
    pass


class Requester:
    def __init__(self, link: Link) -> None:
        self._link = link
        self._channel: aiormq.Channel | None = None
        self._waiting: dict[str, asyncio.Future[CommandResult]] = {}

    async def attach(self, connection: AbstractConnection) -> None:
        channel = await self._link.open_channel(
            connection, publisher_confirms=True, on_return_raises=True
        )
        self._link.watch(channel)
        frames = await frames_of(channel)
        await frames.basic_consume(REPLY_TO, self._on_reply, no_ack=True)
        self._channel = frames

    def detach(self) -> None:
        """Replies to the lost channel cannot come any more."""
        self._channel = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(_ConnectionLost())

    async def request(self, endpoint: str, command: Command, *, timeout: float) -> CommandResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._link.wait_up(timeout)
        channel = self._channel
        assert channel is not None  # attached before the link is up
        correlation = uuid.uuid4().hex
        answer: asyncio.Future[CommandResult] = loop.create_future()
        self._waiting[correlation] = answer
        properties = Basic.Properties(
            reply_to=REPLY_TO,
            correlation_id=correlation,
            expiration=str(max(1, int((deadline - loop.time()) * 1000))),
        )
        try:
            async with asyncio.timeout_at(deadline):
                await channel.basic_publish(
                    messages.encode(command),
                    routing_key=endpoint_queue(endpoint),
                    properties=properties,
                    mandatory=True,
                    wait=False,
                )
                return await answer
        except PublishError:
            raise EndpointUnavailable(f"nobody serves {endpoint!r}") from None
        except TimeoutError:
            raise RequestTimeout(f"{endpoint!r} did not answer in {timeout} s") from None
        except _ConnectionLost:
            raise _lost(endpoint) from None
        except Exception as exc:
            if channel.is_closed:
                raise _lost(endpoint) from exc
            raise BusError(f"requesting {endpoint!r} failed") from exc
        finally:
            del self._waiting[correlation]

    async def _on_reply(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        answer = self._waiting.get(delivered.header.properties.correlation_id or "")
        if answer is None or answer.done():
            return  # its caller gave up
        try:
            result = messages.decode(delivered.body)
        except messages.DecodeError as exc:
            answer.set_exception(BusError(f"unreadable reply: {exc}"))
            return
        if isinstance(result, CommandResult):
            answer.set_result(result)
        else:
            answer.set_exception(BusError(f"a {type(result).__name__} as reply"))


def _lost(endpoint: str) -> RequestTimeout:
    return RequestTimeout(
        f"the connection to the broker was lost before {endpoint!r} answered; "
        "the command may or may not have been carried out"
    )


class Server:
    """Serves one endpoint, each request in a task of its own."""

    def __init__(self, link: Link, endpoint: str, handler: CommandHandler) -> None:
        self.endpoint = endpoint
        self._link = link
        self._handler = handler
        self._channel: AbstractChannel | None = None
        self._frames: aiormq.Channel | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def attach(self, connection: AbstractConnection) -> None:
        """Raises EndpointTaken when another connection serves the endpoint."""
        queue = endpoint_queue(self.endpoint)
        try:
            async with self._link.attempt(connection) as attempt:
                await attempt.declare_queue(queue, exclusive=True, auto_delete=True)
        except ChannelLockedResource:
            raise EndpointTaken(f"{self.endpoint!r} is already served") from None
        channel = await self._link.open_channel(connection)
        self._link.watch(channel)
        frames = await frames_of(channel)
        await frames.basic_consume(queue, self._on_request, no_ack=True)
        self._channel, self._frames = channel, frames

    def detach(self) -> None:
        self._channel = self._frames = None

    async def close(self) -> None:
        """Stops taking requests (the queue goes with its consumer); requests in hand are
        abandoned, and their callers time out."""
        channel, self._channel, self._frames = self._channel, None, None
        if channel is not None:
            await self._link.close_channel(channel)
        await stop_tasks(*self._tasks)

    async def _on_request(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        task = asyncio.create_task(self._answer(delivered), name=f"serve {self.endpoint}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        properties = delivered.header.properties
        try:
            command = messages.decode(delivered.body)
        except messages.DecodeError as exc:
            logger.error("dropping an unreadable request to %s: %s", self.endpoint, exc)
            return
        if not isinstance(command, Command):
            logger.error("dropping a %s sent to %s", type(command).__name__, self.endpoint)
            return
        try:
            result = await self._handler(command)
        except Exception:
            logger.exception("%s failed on %s", self.endpoint, type(command).__name__)
            return
        frames = self._frames
        if frames is None or not properties.reply_to:
            return  # disconnected meanwhile: the requester's reply channel is gone too
        with contextlib.suppress(Exception):
            await frames.basic_publish(
                messages.encode(result),
                routing_key=properties.reply_to,
                properties=Basic.Properties(correlation_id=properties.correlation_id),
                wait=False,
            )
