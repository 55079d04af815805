"""Trigger evaluation: what ingestion and Pairing report in, matched events out to the engine.

`on_outcome` (the device gateway's hook) and `device_registered` (Pairing's) only queue what
happened and return: the ingest path never waits for trigger I/O. One worker task evaluates the
queue in order, so each device's events keep their order, and hands every match to the engine,
whose `submit` does not wait either; deliveries then run concurrently in the engine's queues.

What the worker needs is cached, so it rarely waits itself:
- a realm's triggers are compiled into a `TriggerIndex` (with their delivery policies) the
  first time the realm shows up; a background task compares each realm's `triggers_version`
  with the loaded one every `refresh_interval` and reloads on a change, so installing or
  deleting a trigger takes effect for connected devices within that interval plus one reload;
- a device's groups are read only in realms with group-scoped triggers, and kept for
  `groups_ttl` (Astarte takes up to 10 minutes to notice a membership change);
- outcomes of a realm known to have no triggers are dropped at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from astraea.core.trigger_events import SimpleEvent
from astraea.core.trigger_matching import DataEvent, TriggerIndex
from astraea.core.trigger_policies import Policy
from astraea.core.triggers import Trigger
from astraea.ingest.cache import TtlCache
from astraea.ingest.messages import Outcome
from astraea.storage.base import Storage
from astraea.triggers.event_mapping import (
    Occurrence,
    outcome_occurrences,
    registration_occurrence,
)

DEFAULT_REFRESH_INTERVAL = 0.5  # seconds
DEFAULT_GROUPS_TTL = timedelta(seconds=10)
_CACHED_DEVICES = 100_000

_log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where matched events go (`TriggerEngine` is one); `submit` must return at once."""

    def submit(self, trigger: Trigger, policy: Policy | None, event: SimpleEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class _RealmTriggers:
    version: int  # the realm's `triggers_version` when they were read
    index: TriggerIndex
    policies: Mapping[str, Policy]  # by name, those the triggers name
    empty: bool


class TriggerEvaluator:
    def __init__(
        self,
        storage: Storage,
        sink: EventSink,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        groups_ttl: timedelta = DEFAULT_GROUPS_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._storage = storage
        self._sink = sink
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._realms: dict[str, _RealmTriggers] = {}
        self._groups: TtlCache[tuple[str, str], frozenset[str]] = TtlCache(
            groups_ttl, _CACHED_DEVICES
        )
        self._pending: deque[list[Occurrence]] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts evaluating; the engine must be running, and ingestion not yet."""
        self._closing = False
        self._worker = asyncio.create_task(self._evaluate_forever(), name="trigger evaluator")
        self._refresher = asyncio.create_task(self._refresh_forever(), name="trigger refresh")

    async def stop(self) -> None:
        """Evaluates what is queued, then stops; call it once ingestion has stopped and
        before the engine stops, so that every outcome's events reach the engine."""
        if self._worker is None or self._refresher is None:
            return
        self._refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._refresher
        worker, self._worker, self._refresher = self._worker, None, None
        self._closing = True
        self._wakeup.set()
        await worker

    def on_outcome(self, outcome: Outcome) -> None:
        """Queues the trigger events of one ingestion outcome; returns at once."""
        if not outcome.events or self._worker is None:
            return
        known = self._realms.get(outcome.events[0].realm)
        if known is None:  # not loaded yet: the worker loads it
            self._queue(outcome_occurrences(outcome))
        elif not known.empty:
            self._queue(outcome_occurrences(outcome, known.index.wants))

    def device_registered(self, realm: str, device_id: str, at: datetime) -> None:
        """Queues the `device_registered` event of a Pairing registration; returns at once."""
        if self._may_fire(realm):
            self._queue([registration_occurrence(realm, device_id, at)])

    def _may_fire(self, realm: str) -> bool:
        known = self._realms.get(realm)
        return self._worker is not None and (known is None or not known.empty)

    def _queue(self, occurrences: list[Occurrence]) -> None:
        if occurrences:
            self._pending.append(occurrences)
            self._wakeup.set()

    async def _evaluate_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                occurrences = self._pending.popleft()
                try:
                    await self._evaluate(occurrences)
                except Exception:  # one failed evaluation must not stop the others
                    first = occurrences[0]
                    _log.exception("trigger evaluation failed: %s/%s", first.realm, first.device_id)
            if self._closing:
                return

    async def _evaluate(self, occurrences: list[Occurrence]) -> None:
        """Submits every match of the occurrences of one message (one realm, one device)."""
        first = occurrences[0]
        realm = self._realms.get(first.realm)
        if realm is None:
            realm = self._realms[first.realm] = await self._load(first.realm)
        if realm.empty:
            return
        groups: Collection[str] = ()
        if realm.index.uses_groups:
            groups = await self._groups.get(
                (first.realm, first.device_id),
                self._clock(),
                lambda: self._load_groups(first.realm, first.device_id),
            )
        for occurrence in occurrences:
            subject = occurrence.subject
            if isinstance(subject, DataEvent):
                matches = realm.index.match_data(subject, groups)
            else:
                matches = realm.index.match_device(subject, groups)
            for match in matches:
                trigger = match.installed.trigger
                event = SimpleEvent(
                    realm=occurrence.realm,
                    device_id=occurrence.device_id,
                    timestamp_ms=occurrence.timestamp_ms,
                    simple_trigger_id=match.simple_trigger_id,
                    parent_trigger_id=match.installed.trigger_id,
                    event=occurrence.event,
                )
                policy = None if trigger.policy is None else realm.policies.get(trigger.policy)
                self._sink.submit(trigger, policy, event)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            for name, known in list(self._realms.items()):
                try:
                    if await self._storage.triggers.triggers_version(name) != known.version:
                        self._realms[name] = await self._load(name)
                except Exception:  # retried at the next interval
                    _log.exception("could not refresh the triggers of realm %s", name)

    async def _load(self, realm: str) -> _RealmTriggers:
        """Reads the version first, so that a change made meanwhile shows as a newer one."""
        version = await self._storage.triggers.triggers_version(realm)
        installed = await self._storage.triggers.list_all(realm)
        policies: dict[str, Policy] = {}
        for name in {t.trigger.policy for t in installed if t.trigger.policy is not None}:
            # None only if the triggers naming it were deleted meanwhile, and then the policy.
            policy = await self._storage.policies.get(realm, name)
            if policy is not None:
                policies[name] = policy
        return _RealmTriggers(version, TriggerIndex(installed), policies, empty=not installed)

    async def _load_groups(self, realm: str, device_id: str) -> frozenset[str]:
        device = await self._storage.devices.get(realm, device_id)
        return frozenset() if device is None else frozenset(device.groups)
