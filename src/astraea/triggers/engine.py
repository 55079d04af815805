"""The trigger engine: delivers what ingestion queued, through the triggers' actions.

Ingestion matches events and stores the deliveries in durable queues, per (realm, policy) as
in Astarte, in the same transaction as the values that fired them; the engine delivers them:
- HTTP actions with a policy are in the policy's queue, with its capacity, TTL, prefetch and
  error handlers;
- HTTP actions without one are in `@default`: one attempt, errors dropped, as Astarte does;
- AMQP actions are in `@amqp` and are published to `amqp_url`; like Astarte's publisher they
  are retried until the broker confirms them (policies do not apply to AMQP actions).
Each queue runs its own deliveries, so a slow or dead receiver only holds up its own queue.

Several engines (triggers processes) share the queues through leases in storage: an engine
delivers a queue only while it holds its lease, renews it every `lease_interval`, and gives it
up once the queue is idle, so two engines never deliver the same event in normal operation;
the lease of an engine that died expires after `lease_ttl` and another takes the queue over.
Ingestion announces new deliveries on the bus; an engine also looks for non-empty queues
every `lease_interval`, so a missed announcement only delays delivery.

Queues find their triggers and policies through a `TriggerDirectory`; a delivery whose
trigger is gone is dropped, as Astarte drops it.
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

from astraea.bus.base import Bus, Subscription
from astraea.bus.messages import BroadcastMessage, DeliveriesQueued
from astraea.core.simple_event_codec import DecodeError, decode_simple_event
from astraea.core.trigger_actions import Action, AmqpAction, HttpAction
from astraea.core.trigger_deliveries import AMQP_QUEUE
from astraea.core.trigger_policies import DEFAULT_POLICY, Policy, Strategy
from astraea.storage.base import DeliveryQueueRepository, QueuedDelivery
from astraea.triggers.amqp_delivery import AmqpPublisher
from astraea.triggers.delivery_queue import DeliveryHandler, DeliveryQueue, QueueRules
from astraea.triggers.http_delivery import HttpDeliverer, UndeliverableError
from astraea.triggers.metrics import DropReason, TriggerMetrics

_log = logging.getLogger(__name__)

RESYNC_EVERY = 10  # lease rounds between full re-reads of a queue


class DeliverableTrigger(Protocol):
    """What delivery needs of a trigger (`astraea.core.triggers.Trigger` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> Action: ...


class TriggerDirectory(Protocol):
    """Looks up the triggers and policies of queued deliveries (the engine remembers them)."""

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
    lease_interval: float = 1.0  # seconds between lease renewals and looks for work
    lease_ttl: float = 10.0  # seconds a lease lasts without renewal


class TriggerEngine:
    def __init__(
        self,
        repository: DeliveryQueueRepository,
        directory: TriggerDirectory,
        metrics: TriggerMetrics,
        bus: Bus,
        owner: str,
        settings: EngineSettings | None = None,
        *,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """`owner` names this engine in the leases it holds; unique per process."""
        self._repository = repository
        self._directory = directory
        self._metrics = metrics
        self._bus = bus
        self._owner = owner
        self._settings = settings or EngineSettings()
        self._now_ms = now_ms
        self._deliveries = _Deliveries(directory, metrics, self._settings, now_ms)
        self._queues: dict[tuple[str, str], DeliveryQueue] = {}
        self._claiming: dict[tuple[str, str], asyncio.Lock] = {}
        self._subscription: Subscription | None = None
        self._leaser: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Opens the clients and starts delivering the queues it can lease."""
        self._deliveries.open()
        self._subscription = await self._bus.subscribe(self._on_broadcast)
        await self._lease_round(0)
        self._leaser = asyncio.create_task(self._lease_forever(), name="triggers leases")

    async def stop(self) -> None:
        """Stops delivering and gives the leases up; undelivered events stay queued."""
        if self._leaser is None:
            return
        self._leaser.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._leaser
        self._leaser = None
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        for (realm, name), queue in list(self._queues.items()):
            await queue.stop()
            with contextlib.suppress(Exception):  # it expires anyway
                await self._repository.release_lease(realm, name, self._owner)
        self._queues.clear()
        await self._deliveries.close()

    def holds(self, realm: str, policy: str) -> bool:
        return (realm, policy) in self._queues

    async def _on_broadcast(self, message: BroadcastMessage) -> None:
        if not isinstance(message, DeliveriesQueued):
            return
        key = (message.realm, message.policy)
        queue = self._queues.get(key)
        if queue is None:
            queue = await self._claim(*key)
        if queue is not None:
            queue.offer(message.deliveries)

    async def _lease_forever(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self._settings.lease_interval)
            rounds += 1
            try:
                await self._lease_round(rounds)
            except Exception:  # storage trouble: the next round tries again
                _log.exception("trigger queue leases: round failed")

    async def _lease_round(self, rounds: int) -> None:
        """Renews what it holds (giving idle queues up), then claims queues with work."""
        for key, queue in list(self._queues.items()):
            if queue.idle:
                await self._give_up(key, queue)
            elif not await self._lease(*key):
                _log.warning("trigger queue %s/%s: lease lost, stopping", *key)
                self._queues.pop(key, None)
                await queue.stop()
            elif rounds % RESYNC_EVERY == 0:
                queue.resync()
        for realm, name in await self._repository.queues():
            if (realm, name) not in self._queues:
                await self._claim(realm, name)

    async def _claim(self, realm: str, name: str) -> DeliveryQueue | None:
        """Starts delivering the queue if its lease is free; None when another engine has it."""
        key = (realm, name)
        lock = self._claiming.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._queues:
                return self._queues[key]
            if not await self._lease(realm, name):
                return None
            policy = None
            if not name.startswith("@"):
                policy = await self._directory.find_policy(realm, name)
            queue = self._queues[key] = DeliveryQueue(
                realm,
                name,
                self._rules(name, policy),
                self._repository,
                self._deliveries,
                backoff_ms=self._backoff_ms,
                now_ms=self._now_ms,
                expiry_interval=self._settings.expiry_interval,
            )
            queue.start()
            queue.notify()
        self._claiming.pop(key, None)
        return queue

    async def _give_up(self, key: tuple[str, str], queue: DeliveryQueue) -> None:
        del self._queues[key]
        await queue.stop()
        await self._repository.release_lease(*key, self._owner)

    async def _lease(self, realm: str, name: str) -> bool:
        return await self._repository.lease(
            realm,
            name,
            self._owner,
            now=self._now_ms(),
            ttl=int(self._settings.lease_ttl * 1000),
        )

    def _rules(self, name: str, policy: Policy | None) -> QueueRules:
        builtin = self._settings.builtin_concurrency
        if name == AMQP_QUEUE:
            return QueueRules(None, None, builtin, lambda code, attempts: Strategy.RETRY)
        if policy is None:
            # `@default`, or a queue whose policy is gone: one attempt each.
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
