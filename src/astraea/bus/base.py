"""The bus: how components talk without sharing objects.

Every message that crosses from one component to another goes through a `Bus`, so the same
code runs with every role in one process (`inproc`) or as separate processes over a broker
(`rabbitmq`). Four ways to talk, each with the guarantee its users rely on:

- **Streams** (`publish` / `consume`): durable, partitioned by a key (realm and device), one
  consumer at a time per key, in order, acknowledged explicitly. `publish` returns once the bus
  answers for the message; a consumer's batch is acknowledged only when its handler returns, so
  a crash redelivers instead of losing (at least once).
- **Requests** (`request` / `serve`): a command to one named endpoint (a transport node) with a
  reply and a timeout, for callers that must know what happened (AppEngine's 503).
- **Broadcasts** (`broadcast` / `subscribe`): to every subscriber of every process, best effort,
  for notifications whose facts are stored elsewhere (a trigger set changed, deliveries queued).

The message types and their codec live in `astraea.bus.messages`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from astraea.bus.messages import BroadcastMessage, Command, CommandResult, DeviceMessage

M = TypeVar("M")

SHARD_COUNT = 64
"""Partitions of every stream: fixed, as Astarte's data queues, so that every process maps a
key to the same shard; a shard is consumed by one consumer at a time."""


class BusError(Exception):
    """The bus could not do what was asked."""


class EndpointUnavailable(BusError):
    """No process serves the endpoint (e.g. the transport node is gone)."""


class RequestTimeout(BusError):
    """The endpoint did not answer in time; the command may or may not have been carried out."""


class EndpointTaken(BusError):
    """Another server already serves the endpoint."""


@dataclass(frozen=True, slots=True)
class Stream(Generic[M]):
    """A durable flow of messages of one type to one group of consumers."""

    name: str
    message_type: type[M]


DEVICE_MESSAGES: Stream[DeviceMessage] = Stream("devices", DeviceMessage)
"""Everything that happened to a device, for ingestion: from transport nodes, Pairing, and
whoever cleans up after a dead node."""

BatchHandler = Callable[[Sequence[M]], Awaitable[None]]
ShardTaken = Callable[[int], None]
CommandHandler = Callable[[Command], Awaitable[CommandResult]]
BroadcastHandler = Callable[[BroadcastMessage], Awaitable[None]]


class Subscription(Protocol):
    async def cancel(self) -> None:
        """Stops receiving. A consumer first finishes the batch in hand; what it has not
        acknowledged goes to the stream's other consumers."""


class Bus(Protocol):
    async def start(self) -> None:
        """Connects; publishing or consuming before it is an error."""

    async def close(self) -> None:
        """Cancels every subscription of this bus object, then disconnects."""

    def is_healthy(self) -> bool:
        """False while the connection to the broker is down (for `/health`)."""

    async def publish(self, stream: Stream[M], key: str, message: M) -> None:
        """Returns once the bus answers for `message`: `inproc` once a consumer handled and
        acknowledged it, a broker once it confirmed it on a durable queue. Messages of one key
        that are published one after the other (each awaited before the next) are consumed
        in that order."""

    async def consume(
        self,
        stream: Stream[M],
        handler: BatchHandler[M],
        *,
        max_batch: int = 512,
        on_taken: ShardTaken | None = None,
    ) -> Subscription:
        """Hands messages to `handler` in batches, one batch at a time, in order per key.

        A batch is acknowledged when `handler` returns; when it raises, the same batch is
        handed again after a pause (storage trouble is expected to pass). Each key is consumed
        by one consumer of the stream at a time; when a consumer goes, whether cancelled or
        crashed, its keys move to the other consumers, unacknowledged messages first.
        Messages that cannot be decoded are logged and dropped: no retry can fix them.

        `on_taken(shard)` runs before the first message of a shard is handed, each time this
        consumer takes the shard (again): another consumer may have handled its keys
        meanwhile, so whatever the handler remembers about them is stale.
        """

    async def request(self, endpoint: str, command: Command, *, timeout: float) -> CommandResult:
        """Sends `command` to whoever serves `endpoint` and waits for the result. Raises
        EndpointUnavailable when nobody serves it and RequestTimeout after `timeout` s."""

    async def serve(self, endpoint: str, handler: CommandHandler) -> Subscription:
        """Answers the requests sent to `endpoint`; raises EndpointTaken when another server
        has it. Requests are handled concurrently."""

    async def broadcast(self, message: BroadcastMessage) -> None:
        """Delivers `message` to every subscriber, best effort: not durable, so a process
        that is down or disconnected misses it."""

    async def subscribe(self, handler: BroadcastHandler) -> Subscription:
        """Receives every broadcast from now on, in the order each sender sent them."""


def shard_of(key: str) -> int:
    """The shard of a partition key, the same in every process and every Python run (the
    built-in `hash` of a str is salted per process)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SHARD_COUNT


def device_key(realm: str, device_id: str) -> str:
    """The partition key of a device: all its messages go to one consumer, in order."""
    return f"{realm}/{device_id}"
