"""Trigger evaluation inside ingestion: the events of each message matched against its
realm's triggers, as the deliveries that go into the trigger queues in the same transaction
as the message's values (see `Ingestor.process`).

Matching is split in two so that it can run inside that transaction, where nothing may wait:
`prepare` loads what a batch needs (its realms' triggers, the groups of devices in realms with
group-scoped triggers), then `deliveries` computes, without I/O.

Caches:
- a realm's triggers are compiled into a `TriggerIndex` (with their delivery policies) the
  first time the realm shows up; a background task compares each realm's `triggers_version`
  with the loaded one every `refresh_interval`, and `invalidate` (told by the bus when Realm
  Management changes a trigger) makes the next batch reload at once;
- a device's groups are read only in realms with group-scoped triggers, and kept for
  `groups_ttl` (Astarte takes up to 10 minutes to notice a membership change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from prometheus_client import CollectorRegistry, Counter

from astraea.core.simple_event_codec import encode_simple_event
from astraea.core.trigger_deliveries import NewDelivery, queue_of
from astraea.core.trigger_events import SimpleEvent, event_type
from astraea.core.trigger_matching import DataEvent, TriggerIndex
from astraea.core.trigger_policies import Policy
from astraea.ingest.cache import TtlCache
from astraea.ingest.event_mapping import Occurrence
from astraea.storage.base import Storage

DEFAULT_REFRESH_INTERVAL = 0.5  # seconds
DEFAULT_GROUPS_TTL = timedelta(seconds=10)
_CACHED_DEVICES = 100_000

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RealmTriggers:
    version: int  # the realm's `triggers_version` when they were read
    index: TriggerIndex
    policies: Mapping[str, Policy]  # by name, those the triggers name
    empty: bool


_NO_TRIGGERS = RealmTriggers(0, TriggerIndex([]), {}, empty=True)


class TriggerMatcher:
    def __init__(
        self,
        storage: Storage,
        registry: CollectorRegistry,
        *,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        groups_ttl: timedelta = DEFAULT_GROUPS_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._storage = storage
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._now_ms = now_ms
        self._realms: dict[str, RealmTriggers] = {}
        self._groups: TtlCache[tuple[str, str], frozenset[str]] = TtlCache(
            groups_ttl, _CACHED_DEVICES
        )
        self._prepared_groups: dict[tuple[str, str], frozenset[str]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._matched = Counter(
            "astraea_trigger_events_matched",
            "Events matched by a trigger and queued for delivery.",
            ["realm", "trigger"],
            registry=registry,
        )

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_forever(), name="trigger refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    def invalidate(self, realm: str) -> None:
        """The realm's triggers changed: the next batch that needs them reloads them."""
        self._realms.pop(realm, None)

    def triggers_of(self, realm: str) -> RealmTriggers | None:
        """What is loaded for the realm (None: not yet), so ingestion skips building the
        events of realms without triggers."""
        return self._realms.get(realm)

    async def prepare(self, devices: Iterable[tuple[str, str]]) -> None:
        """Loads the triggers of every realm and the groups every device needs."""
        now = self._clock()
        self._prepared_groups = {}
        for realm, device_id in devices:
            triggers = self._realms.get(realm)
            if triggers is None:
                triggers = self._realms[realm] = await self._load(realm)
            if triggers.index.uses_groups:
                key = (realm, device_id)
                self._prepared_groups[key] = await self._groups.get(
                    key, now, partial(self._load_groups, realm, device_id)
                )

    def deliveries(self, occurrences: Iterable[Occurrence]) -> list[NewDelivery]:
        """The deliveries of every match, in the order of the occurrences; `prepare` must
        have seen their realms and devices."""
        found: list[NewDelivery] = []
        now = self._now_ms()
        for occurrence in occurrences:
            triggers = self._realms.get(occurrence.realm, _NO_TRIGGERS)
            if triggers.empty:
                continue
            groups: Collection[str] = self._prepared_groups.get(
                (occurrence.realm, occurrence.device_id), ()
            )
            subject = occurrence.subject
            if isinstance(subject, DataEvent):
                matches = triggers.index.match_data(subject, groups)
            else:
                matches = triggers.index.match_device(subject, groups)
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
                policy = None if trigger.policy is None else triggers.policies.get(trigger.policy)
                queue, ttl = queue_of(trigger.action, policy)
                try:
                    encoded = encode_simple_event(event)
                except (ValueError, TypeError, OverflowError):  # BSON cannot hold the value
                    _log.exception(
                        "trigger %s/%s: event cannot be encoded", event.realm, trigger.name
                    )
                    continue
                self._matched.labels(event.realm, trigger.name).inc()
                found.append(
                    NewDelivery(
                        realm=event.realm,
                        policy=queue,
                        device_id=event.device_id,
                        trigger_id=event.parent_trigger_id,
                        simple_trigger_id=event.simple_trigger_id,
                        event_type=event_type(event.event),
                        event=encoded,
                        enqueued_at=now,
                        expires_at=None if ttl is None else now + ttl,
                    )
                )
        return found

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            for name, known in list(self._realms.items()):
                try:
                    if await self._storage.triggers.triggers_version(name) != known.version:
                        self._realms[name] = await self._load(name)
                except Exception:  # retried at the next interval
                    _log.exception("could not refresh the triggers of realm %s", name)

    async def _load(self, realm: str) -> RealmTriggers:
        """Reads the version first, so that a change made meanwhile shows as a newer one."""
        version = await self._storage.triggers.triggers_version(realm)
        installed = await self._storage.triggers.list_all(realm)
        policies: dict[str, Policy] = {}
        for name in {t.trigger.policy for t in installed if t.trigger.policy is not None}:
            # None only if the triggers naming it were deleted meanwhile, and then the policy.
            policy = await self._storage.policies.get(realm, name)
            if policy is not None:
                policies[name] = policy
        return RealmTriggers(version, TriggerIndex(installed), policies, empty=not installed)

    async def _load_groups(self, realm: str, device_id: str) -> frozenset[str]:
        device = await self._storage.devices.get(realm, device_id)
        return frozenset() if device is None else frozenset(device.groups)
