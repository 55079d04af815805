"""The trigger engine: takes matched events from ingestion and delivers them through actions.

`submit` never waits: it encodes the event and hands it to a writer task, which stores
submissions in batches (one transaction each) and hands them to their queues. A queue with
nothing waiting starts the delivery at once, while it is being stored (see `delivery_queue`).
Queues are durable and per (realm, policy), as in Astarte:
- HTTP actions with a policy go to the policy's queue, with its capacity, TTL, prefetch and
  error handlers;
- HTTP actions without one go to `@default`: one attempt, errors dropped, as Astarte does;
- AMQP actions go to `@amqp` and are published to `amqp_url`; like Astarte's publisher they
  are retried until the broker confirms them (policies do not apply to AMQP actions).
Each queue runs its own deliveries, so a slow or dead receiver only holds up its own queue.

Resumed queues (after a restart) find their triggers and policies through a
`TriggerDirectory`; a delivery whose trigger is gone is dropped, as Astarte drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from astraea.core.trigger_actions import Action, AmqpAction, HttpAction
from astraea.core.trigger_events import SimpleEvent, event_type
from astraea.core.trigger_policies import DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, Strategy
from astraea.storage.base import DeliveryQueueRepository, NewDelivery, QueuedDelivery
from astraea.triggers.amqp_delivery import AmqpPublisher
from astraea.triggers.delivery_queue import DeliveryHandler, DeliveryQueue, QueueRules
from astraea.triggers.http_delivery import HttpDeliverer, UndeliverableError
from astraea.triggers.metrics import DropReason, TriggerMetrics
from astraea.triggers.simple_event_codec import (
    DecodeError,
    decode_simple_event,
    encode_simple_event,
)

AMQP_QUEUE = "@amqp"

_log = logging.getLogger(__name__)


class DeliverableTrigger(Protocol):
    """What delivery needs of a trigger (`astraea.core.triggers.Trigger` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> Action: ...


class TriggerDirectory(Protocol):
    """Looks up what resumed deliveries need; fresh submissions bring their own."""

    async def find_trigger(
        self, realm: str, trigger_id: uuid.UUID
    ) -> DeliverableTrigger | None: ...

    async def find_policy(self, realm: str, name: str) -> Policy | None: ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    amqp_url: str | None = None  # None: AMQP actions cannot be delivered (dropped, counted)
    http_timeout: float = 10.0  # seconds, per request phase
    amqp_timeout: float = 10.0
    # Concurrency of the `@default` and `@amqp` queues; a policy's queue uses prefetch_count.
    builtin_concurrency: int = 64
    retry_delay: float = 1.0  # seconds before the first retry; doubles with each one
    max_retry_delay: float = 60.0
    expiry_interval: float = 1.0  # how often queues with a TTL look for expired events


class TriggerEngine:
    def __init__(
        self,
        repository: DeliveryQueueRepository,
        directory: TriggerDirectory,
        metrics: TriggerMetrics,
        settings: EngineSettings | None = None,
        *,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._repository = repository
        self._directory = directory
        self._metrics = metrics
        self._settings = settings or EngineSettings()
        self._now_ms = now_ms
        self._deliveries = _Deliveries(directory, metrics, self._settings, now_ms)
        self._queues: dict[tuple[str, str], DeliveryQueue] = {}
        self._policies: dict[tuple[str, str], Policy] = {}
        # Submitted, to be stored; with the future of those the queue started early.
        self._inbox: list[tuple[NewDelivery, asyncio.Future[QueuedDelivery | None] | None]] = []
        self._inbox_ready = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Opens the clients and resumes every queue that still holds deliveries."""
        self._deliveries.open()
        for realm, name in await self._repository.queues():
            policy = None
            if not name.startswith("@"):
                policy = await self._directory.find_policy(realm, name)
            if policy is not None:
                self._policies[(realm, name)] = policy
            self._queue(realm, name, policy).notify()
        self._writer = asyncio.create_task(self._write_forever(), name="triggers writer")

    def submit(
        self, trigger: DeliverableTrigger, policy: Policy | None, event: SimpleEvent
    ) -> None:
        """Queues one matched event for delivery; returns at once, whatever the receivers do.

        `policy` is the trigger's delivery policy (None: `@default`); AMQP actions ignore it.
        """
        if self._writer is None:
            raise RuntimeError("the trigger engine is not running")
        realm = event.realm
        self._metrics.matched.labels(realm, trigger.name).inc()
        if isinstance(trigger.action, AmqpAction) and self._deliveries.amqp is None:
            _log.warning("trigger %s/%s: no AMQP broker configured", realm, trigger.name)
            self._metrics.drop(realm, trigger.name, DropReason.UNDELIVERABLE)
            return
        if isinstance(trigger.action, AmqpAction):
            queue, policy = AMQP_QUEUE, None
        else:
            queue = DEFAULT_POLICY_NAME if policy is None else policy.name
        ttl = self._rules(queue, policy).ttl_ms
        now = self._now_ms()
        try:
            delivery = NewDelivery(
                realm=realm,
                policy=queue,
                device_id=event.device_id,
                trigger_id=event.parent_trigger_id,
                simple_trigger_id=event.simple_trigger_id,
                event_type=event_type(event.event),
                event=encode_simple_event(event),
                enqueued_at=now,
                expires_at=None if ttl is None else now + ttl,
            )
        except (ValueError, TypeError, OverflowError):  # BSON cannot hold the value
            _log.exception("trigger %s/%s: event cannot be encoded", realm, trigger.name)
            self._metrics.drop(realm, trigger.name, DropReason.UNDELIVERABLE)
            return
        self._deliveries.remember(realm, event.parent_trigger_id, trigger)
        if policy is not None:
            self._policies[(realm, queue)] = policy
        target = self._queue(realm, queue, policy)
        started = target.start_early(delivery)
        if started is None:
            target.hold()
        self._inbox.append((delivery, started))
        self._inbox_ready.set()

    async def flush(self) -> None:
        """Waits until every event submitted so far is stored."""
        async with self._write_lock:
            batch, self._inbox = self._inbox, []
            if not batch:
                return
            try:
                stored = await self._repository.enqueue([delivery for delivery, _ in batch])
            except Exception:
                _log.exception("could not store %d trigger deliveries", len(batch))
                stored = [None] * len(batch)
                for delivery, started in batch:
                    if started is None:  # an early one is being attempted all the same
                        self._deliveries.dropped(
                            delivery.realm, delivery.trigger_id, DropReason.UNDELIVERABLE
                        )
            held: dict[tuple[str, str], list[QueuedDelivery]] = {}
            counts: dict[tuple[str, str], int] = {}
            for (delivery, started), row in zip(batch, stored, strict=True):
                if started is not None:
                    started.set_result(row)
                    continue
                key = (delivery.realm, delivery.policy)
                counts[key] = counts.get(key, 0) + 1
                if row is not None:  # None: its realm is gone
                    held.setdefault(key, []).append(row)
            for key, count in counts.items():
                self._queues[key].offer(held.get(key, []), count)

    async def stop(self) -> None:
        """Stores what was submitted, then stops; undelivered events resume on `start`."""
        if self._writer is None:
            return
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None
        await self.flush()
        for queue in self._queues.values():
            await queue.stop()
        self._queues.clear()
        await self._deliveries.close()

    async def _write_forever(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            await self.flush()

    def _queue(self, realm: str, name: str, policy: Policy | None) -> DeliveryQueue:
        rules = self._rules(name, policy)
        queue = self._queues.get((realm, name))
        if queue is None:
            queue = DeliveryQueue(
                realm,
                name,
                rules,
                self._repository,
                self._deliveries,
                backoff_ms=self._backoff_ms,
                now_ms=self._now_ms,
                expiry_interval=self._settings.expiry_interval,
            )
            self._queues[(realm, name)] = queue
            queue.start()
        else:
            queue.rules = rules  # the policy may have been deleted and created anew
        return queue

    def _rules(self, name: str, policy: Policy | None) -> QueueRules:
        builtin = self._settings.builtin_concurrency
        if name == AMQP_QUEUE:
            return QueueRules(None, None, builtin, lambda code, attempts: Strategy.RETRY)
        if policy is None:
            # `@default`, or a resumed queue whose policy is gone: one attempt each.
            return QueueRules(None, None, builtin, DEFAULT_POLICY.decide)
        return QueueRules(
            capacity=policy.maximum_capacity,
            ttl_ms=None if policy.event_ttl is None else policy.event_ttl * 1000,
            concurrency=policy.effective_prefetch_count,
            decide=policy.decide,
        )

    def _backoff_ms(self, attempts: int) -> int:
        """Exponential, capped, with up to 25% jitter so retries of many events spread out."""
        delay = min(
            self._settings.retry_delay * 2 ** min(attempts - 1, 30),
            self._settings.max_retry_delay,
        )
        return int(delay * (1 + random.random() / 4) * 1000)


class _Deliveries(DeliveryHandler):
    """The engine's side of its queues: attempts deliveries and keeps the metrics."""

    def __init__(
        self,
        directory: TriggerDirectory,
        metrics: TriggerMetrics,
        settings: EngineSettings,
        now_ms: Callable[[], int],
    ) -> None:
        self._directory = directory
        self.metrics = metrics
        self._settings = settings
        self._now_ms = now_ms
        # (realm, trigger id) -> trigger; None remembers a trigger known to be gone (ids are
        # never reused).
        self._triggers: dict[tuple[str, uuid.UUID], DeliverableTrigger | None] = {}
        self._http: HttpDeliverer | None = None
        self.amqp: AmqpPublisher | None = None

    def open(self) -> None:
        self._http = HttpDeliverer(self._settings.http_timeout)
        if self._settings.amqp_url is not None:
            self.amqp = AmqpPublisher(self._settings.amqp_url, self._settings.amqp_timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self.amqp is not None:
            await self.amqp.close()
        self._http = self.amqp = None

    def remember(self, realm: str, trigger_id: uuid.UUID, trigger: DeliverableTrigger) -> None:
        self._triggers[(realm, trigger_id)] = trigger

    async def attempt(self, realm: str, delivery: QueuedDelivery) -> int | DropReason:
        trigger = await self._trigger(realm, delivery.trigger_id)
        if trigger is None:
            return DropReason.TRIGGER_MISSING
        try:
            event = decode_simple_event(delivery.event)
        except DecodeError:
            _log.exception("trigger delivery %s: stored event unreadable", delivery.seq)
            return DropReason.UNDELIVERABLE
        action = trigger.action
        if isinstance(action, HttpAction) and self._http is not None:
            try:
                return await self._http.deliver(action, event, trigger.name)
            except UndeliverableError:
                _log.exception("trigger %s/%s: request cannot be built", realm, trigger.name)
                return DropReason.UNDELIVERABLE
        if isinstance(action, AmqpAction) and self.amqp is not None:
            return await self.amqp.deliver(action, event, delivery.event)
        return DropReason.UNDELIVERABLE

    def delivered(self, realm: str, delivery: QueuedDelivery) -> None:
        name = self._label(realm, delivery.trigger_id)
        self.metrics.delivered.labels(realm, name).inc()
        latency = max(0, self._now_ms() - delivery.enqueued_at) / 1000
        self.metrics.latency.labels(realm, name).observe(latency)

    def retrying(self, realm: str, delivery: QueuedDelivery) -> None:
        self.metrics.retried.labels(realm, self._label(realm, delivery.trigger_id)).inc()

    def dropped(self, realm: str, trigger_id: uuid.UUID, reason: DropReason) -> None:
        self.metrics.drop(realm, self._label(realm, trigger_id), reason)

    async def _trigger(self, realm: str, trigger_id: uuid.UUID) -> DeliverableTrigger | None:
        key = (realm, trigger_id)
        if key not in self._triggers:
            self._triggers[key] = await self._directory.find_trigger(realm, trigger_id)
        return self._triggers[key]

    def _label(self, realm: str, trigger_id: uuid.UUID) -> str:
        """The trigger's name, or its id when the name is unknown (the trigger is gone)."""
        trigger = self._triggers.get((realm, trigger_id))
        return str(trigger_id) if trigger is None else trigger.name
