"""Which shards of a stream a consumer holds: membership, fair share and locks.

RabbitMQ 3.10's single-active-consumer hands every shard to whoever subscribed first and has
no way to move one, so consumers divide the shards among themselves:

- A shard's lock is the exclusive queue `astraea.<stream>.lock.<shard>`: one connection at a
  time can declare it, and the broker deletes it when that connection dies, so a crash frees
  the locks at once, without a lease to expire. A failed attempt (RESOURCE_LOCKED) closes its
  channel, hence a throwaway channel per attempt.
- Every consumer says which shards it holds on the fanout exchange `astraea.<stream>.members`
  every `heartbeat` s (and at once when that changes); those heard in the last `liveness` s
  are alive. A joining consumer asks the others to answer at once and listens for `join` s
  before taking anything, so it does not try locks that are held.
- Each alive consumer holds its fair share, ceil(SHARD_COUNT / alive): one above it gives the
  extra shards up gracefully (its holder finishes the batch in hand first), one below it
  takes shards that nobody alive claims. Shards are ranked per consumer by rendezvous hashing,
  so that consumers racing for free shards mostly try different ones.

A balancer lives for one connection: when the connection is lost its locks are gone with it,
and the next connection starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import aiormq
import aiormq.abc
import msgspec
from aio_pika import ExchangeType
from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelLockedResource

from astraea.bus.base import SHARD_COUNT
from astraea.bus.rabbitmq_link import Link, frames_of, stop_tasks
from astraea.bus.rabbitmq_topology import lock_queue, members_exchange

logger = logging.getLogger(__name__)

LEAVE_TIMEOUT = 10.0
"""Seconds a leaving consumer waits for its balance step to finish before cancelling it."""


@dataclass(frozen=True, slots=True)
class ShardTimings:
    heartbeat: float = 1.0
    liveness: float = 3.0  # a crashed consumer's shards move after about this long
    join: float = 0.3
    tick: float = 0.5  # how often members are expired and shares checked when nothing is heard


class ShardHolder(Protocol):
    """The consumer for whom the balancer holds locks."""

    async def take(self, connection: AbstractConnection, shard: int) -> None:
        """The lock is held: start consuming the shard on `connection`."""

    async def give_up(self, shard: int) -> None:
        """Stop consuming the shard, acknowledging the batch in hand first; once it returns
        the lock is released."""


class _Presence(msgspec.Struct, frozen=True, array_like=True):
    member: str
    state: Literal["join", "alive", "leave"]
    shards: tuple[int, ...] = ()


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Presence)


@dataclass(slots=True)
class _Member:
    seen: float
    shards: frozenset[int]


class ShardBalancer:
    def __init__(
        self,
        link: Link,
        connection: AbstractConnection,
        channel: aiormq.Channel,
        stream: str,
        member: str,
        holder: ShardHolder,
        timings: ShardTimings,
    ) -> None:
        """Use `start`."""
        self._link = link
        self._connection = connection
        self._channel = channel  # presences and lock deletions
        self._stream = stream
        self._member = member
        self._holder = holder
        self._timings = timings
        self._exchange = members_exchange(stream)
        self._members: dict[str, _Member] = {}
        self._locks: set[int] = set()
        self._wake = asyncio.Event()
        self._leaving = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        link: Link,
        connection: AbstractConnection,
        stream: str,
        member: str,
        holder: ShardHolder,
        timings: ShardTimings,
    ) -> ShardBalancer:
        """Joins the stream's consumers on `connection`, and balances from then on."""
        channel = await link.open_channel(connection)
        link.watch(channel)
        exchange = members_exchange(stream)
        await channel.declare_exchange(exchange, ExchangeType.FANOUT)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange)
        frames = await frames_of(channel)
        balancer = cls(link, connection, frames, stream, member, holder, timings)
        await frames.basic_consume(queue.name, balancer._on_presence, no_ack=True)
        await balancer._announce("join")
        for name, loop in (("heartbeat", balancer._beat()), ("balance", balancer._balance())):
            task = asyncio.create_task(loop, name=f"{name} {member}")
            task.add_done_callback(balancer._on_loop_end)
            balancer._tasks.append(task)
        return balancer

    def abandon(self) -> None:
        """The connection is gone, and the locks with it."""
        for task in self._tasks:
            task.cancel()
        self._locks.clear()

    async def leave(self) -> None:
        """Gives every shard up gracefully and says so, for the others to take them now.

        The balance loop is let finish its step rather than cancelled: cancelling aiormq in
        the middle of an RPC (a Basic.Consume of a shard being taken) closes that channel
        with an RPC that can stall the whole connection until its heartbeat gives up."""
        self._leaving.set()
        self._wake.set()
        balance = [task for task in self._tasks if task.get_name().startswith("balance")]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*balance)), LEAVE_TIMEOUT)
        await stop_tasks(*self._tasks)
        await asyncio.gather(*(self._release(shard) for shard in list(self._locks)))
        await self._announce("leave")

    def _on_loop_end(self, task: asyncio.Task[None]) -> None:
        """A loop that fails (its connection lost, or a bug) resets its connection, so that
        the consumer rejoins rather than holding shards nobody balances."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._link.reset(self._connection, f"{task.get_name()} failed: {exc!r}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._timings.heartbeat)
            await self._announce("alive")

    async def _balance(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timings.join):
                await self._leaving.wait()
        while not self._leaving.is_set():
            self._wake.clear()
            if await self._rebalance():
                await self._announce("alive")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timings.tick):
                    await self._wake.wait()

    async def _rebalance(self) -> bool:
        """One step towards the fair share; True when the locks held changed."""
        others = self._alive_others()
        share = -(-SHARD_COUNT // (len(others) + 1))
        if len(self._locks) > share:
            extra = sorted(self._locks, key=self._rank)[: len(self._locks) - share]
            await asyncio.gather(*(self._release(shard) for shard in extra))
            logger.info(
                "%s gave up shards %s of %s (holds %d, the share of %d consumers)",
                self._member, sorted(extra), self._stream, len(self._locks), len(others) + 1,
            )  # fmt: skip
            return True
        if len(self._locks) < share:
            claimed = frozenset[int]().union(*(member.shards for member in others.values()))
            free = [s for s in range(SHARD_COUNT) if s not in self._locks and s not in claimed]
            wanted = sorted(free, key=self._rank, reverse=True)[: share - len(self._locks)]
            taken = [
                shard
                for shard in wanted
                if not self._leaving.is_set() and await self._acquire(shard)
            ]
            if taken:
                logger.info(
                    "%s took shards %s of %s (holds %d, the share of %d consumers)",
                    self._member, sorted(taken), self._stream, len(self._locks), len(others) + 1,
                )  # fmt: skip
                return True
        return False

    def _alive_others(self) -> dict[str, _Member]:
        oldest = asyncio.get_running_loop().time() - self._timings.liveness
        for name in [name for name, member in self._members.items() if member.seen < oldest]:
            del self._members[name]
        return self._members

    def _rank(self, shard: int) -> bytes:
        return hashlib.blake2b(f"{self._member}/{shard}".encode(), digest_size=8).digest()

    async def _acquire(self, shard: int) -> bool:
        try:
            async with self._link.attempt(self._connection) as attempt:
                await attempt.declare_queue(lock_queue(self._stream, shard), exclusive=True)
        except ChannelLockedResource:
            return False  # taken since the last heartbeat said otherwise
        self._locks.add(shard)
        try:
            await self._holder.take(self._connection, shard)
        except Exception:
            logger.exception(
                "%s could not consume shard %d of %s", self._member, shard, self._stream
            )
            await self._release(shard)
            return False
        return True

    async def _release(self, shard: int) -> None:
        await self._holder.give_up(shard)
        await self._channel.queue_delete(lock_queue(self._stream, shard))
        self._locks.discard(shard)

    async def _announce(self, state: Literal["join", "alive", "leave"]) -> None:
        presence = _Presence(self._member, state, tuple(sorted(self._locks)))
        await self._channel.basic_publish(
            _encoder.encode(presence), exchange=self._exchange, wait=False
        )

    async def _on_presence(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        try:
            presence = _decoder.decode(delivered.body)
        except msgspec.DecodeError:
            logger.warning("ignoring an unreadable presence on %s", self._exchange)
            return
        if presence.member == self._member:
            return
        if presence.state == "leave":
            self._members.pop(presence.member, None)
        else:
            now = asyncio.get_running_loop().time()
            self._members[presence.member] = _Member(now, frozenset(presence.shards))
        if presence.state == "join":
            await self._announce("alive")
        self._wake.set()
