"""One durable event queue at work: Astarte's per-policy RabbitMQ queue, on top of storage.

Semantics, mirroring a RabbitMQ queue with a consumer of prefetch `concurrency`:
- at most `concurrency` deliveries are in flight; with 1 the queue goes out strictly in order.
  With more, a device's deliveries still go out one at a time, in order (the platform keeps
  per-device order), while other devices' proceed;
- a failed attempt is retried while the rules say so; the delivery keeps its slot during the
  backoff, as a requeued message at the head of the queue would;
- beyond `capacity` the oldest waiting deliveries are dropped (in-flight ones do not count,
  like unacknowledged messages), and deliveries older than the TTL are dropped.

Every step is persisted (attempt counts, next attempt time, removal), so a restart resumes
where the queue was: pending retries keep their count and their backoff.

Storage is the truth, and memory a prefix of it: `_waiting` holds the oldest waiting
deliveries (up to `_MEMORY_LIMIT`), and every stored delivery up to `seq` `_horizon` is either
there, in flight, or gone. While memory holds the whole queue, deliveries ingestion has just
stored are `offer`ed straight to it (the bus announces them), so a delivery reaches its
receiver without a read back from storage; otherwise the queue reads on from `_horizon` in
chunks. Several ingestion workers may commit deliveries out of `seq` order; an announced one
below the horizon is still taken, and `resync` reads the whole queue again in case an
announcement was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from astraea.core.trigger_policies import Strategy
from astraea.storage.base import DeliveryQueueRepository, QueuedDelivery
from astraea.triggers.metrics import DropReason

_log = logging.getLogger(__name__)
_FAILURE_PAUSE = 1.0  # seconds
_MEMORY_LIMIT = 10_000  # waiting deliveries kept in memory per queue
_FETCH_CHUNK = 256


@dataclass(frozen=True, slots=True)
class QueueRules:
    capacity: int | None  # None: unbounded
    ttl_ms: int | None  # None: events never expire
    concurrency: int
    # (error code, attempts made so far) -> what to do; see `Policy.decide`.
    decide: Callable[[int, int], Strategy]


class DeliveryHandler(Protocol):
    """What the queue needs from the engine: attempting one delivery, and hearing outcomes."""

    async def attempt(self, realm: str, delivery: QueuedDelivery) -> int | DropReason:
        """The status code of one attempt (200..399: delivered), or why the delivery can
        never succeed."""

    def delivered(self, realm: str, delivery: QueuedDelivery) -> None: ...

    def retrying(self, realm: str, delivery: QueuedDelivery) -> None: ...

    def dropped(self, realm: str, trigger_id: uuid.UUID, reason: DropReason) -> None: ...


class DeliveryQueue:
    def __init__(
        self,
        realm: str,
        policy: str,
        rules: QueueRules,
        repository: DeliveryQueueRepository,
        handler: DeliveryHandler,
        *,
        backoff_ms: Callable[[int], int],
        now_ms: Callable[[], int],
        expiry_interval: float,
    ) -> None:
        self.realm = realm
        self.policy = policy
        self.rules = rules
        self._repository = repository
        self._handler = handler
        self._backoff_ms = backoff_ms
        self._now_ms = now_ms
        self._expiry_interval = expiry_interval
        self._in_flight: dict[int, str] = {}  # seq -> device id
        self._waiting: dict[int, QueuedDelivery] = {}  # by seq, in order
        self._horizon = 0  # the highest seq read or offered into memory
        self._complete = False  # memory holds every stored waiting delivery
        self._missed = 0  # offers left in storage (counted)
        # Recently finished seqs: an announcement may arrive after a read found and finished
        # the same deliveries.
        self._finished: set[int] = set()
        self._finished_order: deque[int] = deque()
        self._slots: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._grown = True  # rows were added since the last trim
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"triggers {self.realm}/{self.policy}")

    def notify(self) -> None:
        """New deliveries were stored in this queue."""
        self._grown = True
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing waits or is in flight, as far as this queue knows."""
        return self._complete and not self._waiting and not self._in_flight

    def offer(self, stored: Sequence[QueuedDelivery]) -> None:
        """New deliveries were stored in this queue: these, with growing seqs."""
        if not stored:
            return
        if self._complete and len(self._waiting) + len(stored) <= _MEMORY_LIMIT:
            late = stored[0].seq < self._horizon
            for delivery in stored:
                if delivery.seq not in self._in_flight and delivery.seq not in self._finished:
                    self._waiting[delivery.seq] = delivery
            self._horizon = max(self._horizon, stored[-1].seq)
            if late:  # committed after a later seq: keep the queue in seq order
                self._waiting = dict(sorted(self._waiting.items()))
        else:  # they stay in storage, beyond the horizon
            self._complete = False
            self._missed += 1
        self.notify()

    def resync(self) -> None:
        """Reads the queue from its start again: finds deliveries committed below the horizon
        whose announcement never came."""
        self._horizon = 0
        self._complete = False
        self.notify()

    async def stop(self) -> None:
        """Stops at once; deliveries in flight stay stored and resume on the next start."""
        tasks = [*self._slots, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            timeout = self._expiry_interval if self.rules.ttl_ms is not None else None
            try:
                await self._expire()
                await self._dispatch()
                await self._trim()
            except Exception:
                _log.exception("trigger queue %s/%s failed a step", self.realm, self.policy)
                timeout = _FAILURE_PAUSE  # try again even if nothing wakes the queue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _expire(self) -> None:
        if self.rules.ttl_ms is None:
            return
        expired = await self._repository.drop_expired(
            self.realm, self.policy, now=self._now_ms(), skip_seqs=list(self._in_flight)
        )
        self._forget(expired, DropReason.EXPIRED)

    async def _trim(self) -> None:
        if self.rules.capacity is None or not self._grown:
            return
        self._grown = False
        trimmed = await self._repository.trim(
            self.realm,
            self.policy,
            capacity=self.rules.capacity,
            skip_seqs=list(self._in_flight),
        )
        self._forget(trimmed, DropReason.CAPACITY)

    def _forget(self, removed: list[tuple[int, uuid.UUID]], reason: DropReason) -> None:
        for seq, trigger_id in removed:
            self._waiting.pop(seq, None)
            self._handler.dropped(self.realm, trigger_id, reason)

    async def _dispatch(self) -> None:
        """Starts waiting deliveries, oldest first, skipping devices that have one in flight."""
        while self._start_waiting() and not self._complete:
            if len(self._waiting) >= _MEMORY_LIMIT:
                return  # wait for the head to move
            missed = self._missed
            rows = await self._repository.fetch(
                self.realm,
                self.policy,
                limit=_FETCH_CHUNK,
                after=self._horizon,
                skip_seqs=list(self._in_flight),
            )
            for row in rows:
                self._waiting[row.seq] = row
            if rows:
                if self._horizon == 0 and self._waiting:  # a resync merged into what was there
                    self._waiting = dict(sorted(self._waiting.items()))
                self._horizon = max(self._horizon, rows[-1].seq)
            # Deliveries offered while this read ran may have been stored after it.
            self._complete = len(rows) < _FETCH_CHUNK and self._missed == missed

    def _start_waiting(self) -> bool:
        """Starts what memory allows; True while slots are left free."""
        free = self.rules.concurrency - len(self._in_flight)
        if free <= 0 or not self._waiting:
            return free > 0
        busy = set(self._in_flight.values())
        started = []
        for seq, row in self._waiting.items():
            if row.device_id not in busy:
                busy.add(row.device_id)
                started.append(seq)
                if len(started) == free:
                    break
        for seq in started:
            self._start_slot(self._waiting.pop(seq))
        return len(started) < free

    def _start_slot(self, row: QueuedDelivery) -> None:
        self._in_flight[row.seq] = row.device_id
        task = asyncio.create_task(self._deliver(row))
        self._slots.add(task)
        task.add_done_callback(self._slots.discard)

    async def _deliver(self, row: QueuedDelivery) -> None:
        try:
            await self._attempts(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Storage trouble: the row stays queued; the pause keeps a lasting failure from
            # turning into a busy loop of attempts.
            _log.exception("trigger delivery %s of %s/%s failed", row.seq, self.realm, self.policy)
            await asyncio.sleep(_FAILURE_PAUSE)
        finally:
            del self._in_flight[row.seq]
            self._remember_finished(row.seq)
            self._wake.set()

    async def _attempts(self, row: QueuedDelivery) -> None:
        attempts, next_attempt_at = row.attempts, row.next_attempt_at
        while True:
            delay_ms = next_attempt_at - self._now_ms()
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            if row.expires_at is not None and self._now_ms() >= row.expires_at:
                await self._drop(row, DropReason.EXPIRED)
                return
            outcome = await self._handler.attempt(self.realm, row)
            if isinstance(outcome, DropReason):
                await self._drop(row, outcome)
                return
            if 200 <= outcome < 400:
                await self._repository.remove(row.seq)
                self._handler.delivered(self.realm, row)
                return
            attempts += 1
            if self.rules.decide(outcome, attempts) is not Strategy.RETRY:
                await self._drop(row, DropReason.DISCARDED)
                return
            next_attempt_at = self._now_ms() + self._backoff_ms(attempts)
            await self._repository.record_failure(row.seq, attempts, next_attempt_at)
            self._handler.retrying(self.realm, row)

    def _remember_finished(self, seq: int) -> None:
        self._finished.add(seq)
        self._finished_order.append(seq)
        if len(self._finished_order) > _MEMORY_LIMIT:
            self._finished.discard(self._finished_order.popleft())

    async def _drop(self, row: QueuedDelivery, reason: DropReason) -> None:
        await self._repository.remove(row.seq)
        self._handler.dropped(self.realm, row.trigger_id, reason)
