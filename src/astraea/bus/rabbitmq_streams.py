"""One consumer of a stream: the shards it holds, and their messages in batches.

Each consumer has a connection of its own, because a shard lock is an exclusive queue and
exclusive means "of this connection": two consumers sharing one could not exclude each other,
and a crash of either must free exactly its own shards. Each shard it holds is consumed on a
channel of its own, so that delivery tags are per shard: a batch holds, for every shard in it,
the oldest unacknowledged deliveries of that shard's channel, so one `multiple=True` ack per
shard acknowledges exactly the batch. Giving a shard up closes its channel, which requeues
what was delivered but not handled at the head of the queue, in order, for the next holder.

Deliveries of all shards go to one buffer in arrival order (per shard, the queue's order),
which is cut into batches of up to `max_batch` for the handler, one batch at a time. A
shard's prefetch is two batches, so the next batch fills while one is being handled.

Traffic goes through the channels' aiormq layer: deliveries arrive without aio-pika's
per-message wrapper, and acks are explicit frames on the channel they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

import aiormq
import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractConnection

from astraea.bus import messages
from astraea.bus.base import BatchHandler, ShardTaken, Stream
from astraea.bus.rabbitmq_link import Link, frames_of
from astraea.bus.rabbitmq_shards import ShardBalancer, ShardTimings
from astraea.bus.rabbitmq_topology import declare_stream, shard_queue

logger = logging.getLogger(__name__)

M = TypeVar("M")


@dataclass(eq=False, slots=True)
class _Lease:
    """A shard being consumed on its channel."""

    shard: int
    channel: AbstractChannel
    frames: aiormq.Channel
    feeding: bool = True  # its deliveries go to the buffer
    alive: bool = True  # its channel is open, so its delivery tags mean something


@dataclass(slots=True)
class _Delivery(Generic[M]):
    lease: _Lease
    tag: int
    message: M | None  # None: undecodable, acknowledged with its batch and never handed over


@dataclass(slots=True)
class _InHand:
    leases: set[_Lease]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class StreamConsumer(Generic[M]):
    def __init__(
        self,
        url: str,
        name: str,
        stream: Stream[M],
        handler: BatchHandler[M],
        *,
        max_batch: int,
        on_taken: ShardTaken | None,
        retry_delay: float,
        timings: ShardTimings,
        backoff: tuple[float, float],
    ) -> None:
        self._stream = stream
        self.stream_name = stream.name
        self._handler = handler
        self._max_batch = max_batch
        self._on_taken = on_taken
        self._retry_delay = retry_delay
        self._timings = timings
        self.member = f"{name}/{secrets.token_hex(4)}"
        self._link = Link(
            url,
            f"astraea {name} consuming {stream.name}",
            self._on_connected,
            self._on_lost,
            backoff=backoff,
        )
        self._leases: dict[int, _Lease] = {}
        self._buffer: deque[_Delivery[M]] = deque()
        self._arrived = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_hand: _InHand | None = None
        self._balancer: ShardBalancer | None = None
        self._runner: asyncio.Task[None] | None = None

    @property
    def shards(self) -> frozenset[int]:
        """The shards being consumed now."""
        return frozenset(shard for shard, lease in self._leases.items() if lease.feeding)

    def is_healthy(self) -> bool:
        return self._link.is_up()

    async def start(self, timeout: float) -> None:
        self._link.start()
        self._runner = asyncio.create_task(self._run(), name=f"consumer {self.member}")
        try:
            await self._link.wait_up(timeout)
        except BaseException:
            await self.cancel()
            raise

    async def cancel(self) -> None:
        """Finishes and acknowledges the batch in hand, gives every shard up, disconnects."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._arrived.set()
        if self._runner is not None:
            await self._runner
        balancer, self._balancer = self._balancer, None
        if balancer is not None and self._link.is_up():
            try:
                await balancer.leave()
            except Exception:  # the connection went meanwhile: the broker frees all the same
                logger.warning(
                    "%s: leaving %s failed", self.member, self._stream.name, exc_info=True
                )
        await self._link.close()

    async def take(self, connection: AbstractConnection, shard: int) -> None:
        channel = await self._link.open_channel(connection)
        self._link.watch(channel)
        frames = await frames_of(channel)
        await frames.basic_qos(prefetch_count=2 * self._max_batch)
        lease = self._leases[shard] = _Lease(shard, channel, frames)
        if self._on_taken is not None:
            self._on_taken(shard)
        await frames.basic_consume(
            shard_queue(self._stream.name, shard), partial(self._on_delivery, lease)
        )

    async def give_up(self, shard: int) -> None:
        """The lease stays listed until its channel is closed, so that a give-up cancelled
        half-way (the consumer leaving) is finished by the next one."""
        lease = self._leases.get(shard)
        if lease is None:
            return
        lease.feeding = False
        self._buffer = deque(d for d in self._buffer if d.lease is not lease)
        while self._in_hand is not None and lease in self._in_hand.leases:
            await self._in_hand.done.wait()
        lease.alive = False
        await self._link.close_channel(lease.channel)
        if self._leases.get(shard) is lease:
            del self._leases[shard]

    async def _on_connected(self, connection: AbstractConnection) -> None:
        async with self._link.attempt(connection) as channel:
            await declare_stream(channel, self._stream.name)
        if self._stopping.is_set():
            return
        self._balancer = await ShardBalancer.start(
            self._link, connection, self._stream.name, self.member, self, self._timings
        )

    def _on_lost(self) -> None:
        """What was delivered on the lost channels is redelivered to the next holder; what is
        in hand is still handled, but never acknowledged (its tags died with the channels)."""
        if self._balancer is not None:
            self._balancer.abandon()
            self._balancer = None
        for lease in self._leases.values():
            lease.feeding = lease.alive = False
        self._leases.clear()
        self._buffer.clear()

    async def _on_delivery(self, lease: _Lease, delivered: aiormq.abc.DeliveredMessage) -> None:
        if not lease.feeding:
            return  # being given up: requeued when its channel closes
        tag = delivered.delivery_tag
        assert tag is not None
        message: M | None
        try:
            decoded = messages.decode(delivered.body)
            if not isinstance(decoded, self._stream.message_type):
                raise messages.DecodeError(f"a {type(decoded).__name__}")
            message = decoded
        except messages.DecodeError as exc:
            logger.error("dropping an undecodable message of %s: %s", self._stream.name, exc)
            message = None
        self._buffer.append(_Delivery(lease, tag, message))
        self._arrived.set()

    async def _run(self) -> None:
        while (batch := await self._next_batch()) is not None:
            in_hand = self._in_hand = _InHand({delivery.lease for delivery in batch})
            try:
                await self._ack(await self._handle(batch))
            finally:
                self._in_hand = None
                in_hand.done.set()

    async def _next_batch(self) -> list[_Delivery[M]] | None:
        """The oldest deliveries, up to `max_batch`; None once stopping."""
        while not self._stopping.is_set():
            batch: list[_Delivery[M]] = []
            while self._buffer and len(batch) < self._max_batch:
                delivery = self._buffer.popleft()
                if delivery.lease.feeding:
                    batch.append(delivery)
            if batch:
                return batch
            self._arrived.clear()
            await self._arrived.wait()
            # aiormq hands each delivery over in a task of its own: let those of the frames
            # read along with this one reach the buffer, so they share its batch (and ack).
            await asyncio.sleep(0)
        return None

    async def _handle(self, batch: list[_Delivery[M]]) -> list[_Delivery[M]]:
        """Hands the batch over until the handler returns; what to acknowledge then. A retry
        leaves out the deliveries whose channel died: they are being redelivered."""
        while True:
            live = [delivery for delivery in batch if delivery.lease.alive]
            handed: Sequence[M] = [d.message for d in live if d.message is not None]
            if not handed:
                return live
            try:
                await self._handler(handed)
                return live
            except Exception:  # storage trouble, expected to pass: hand the batch again
                logger.exception("handling a batch of %d failed; retrying", len(handed))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_delay):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return []  # unacknowledged: the next holder gets the batch again

    async def _ack(self, deliveries: list[_Delivery[M]]) -> None:
        last: dict[_Lease, int] = defaultdict(int)
        for delivery in deliveries:
            last[delivery.lease] = max(last[delivery.lease], delivery.tag)
        for lease, tag in last.items():
            if lease.alive:
                with contextlib.suppress(Exception):  # closed meanwhile: redelivered then
                    await lease.frames.basic_ack(tag, multiple=True, wait=False)
