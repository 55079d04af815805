"""Trigger matching inside ingestion, on real SQLite storage: the events of outcomes in,
the deliveries ingestion queues out.

`Matched` runs what `Ingestor.process` does for a batch: `prepare` for its devices, then
`deliveries` over the occurrences of each outcome, and decodes the deliveries back into the
events they carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from astraea.core import trigger_events as fired
from astraea.core.device_id import decode_device_id
from astraea.core.simple_event_codec import decode_simple_event
from astraea.core.trigger_deliveries import NewDelivery
from astraea.core.trigger_events import SimpleEvent
from astraea.core.trigger_policies import parse_policy
from astraea.core.triggers import InstalledTrigger, parse_trigger
from astraea.core.values import datetime_to_millis
from astraea.ingest import events as ingest
from astraea.ingest.event_mapping import outcome_occurrences
from astraea.ingest.messages import Outcome
from astraea.ingest.trigger_matching import TriggerMatcher
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage

REALM = "test"
DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
OTHER_DEVICE = "f0VMRgIBAQAAAAAAAAAAAA"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
VALUES = "org.example.Values"
PROPS = "org.example.Props"
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "astraea.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite://{db_path}")
    await opened.realms.create(Realm(name=REALM, jwt_public_key_pem="pem"))
    try:
        yield opened
    finally:
        await opened.close()


@dataclass
class Matched:
    """What matching queued, by trigger name (the test installs the triggers it names)."""

    matcher: TriggerMatcher
    storage: Storage
    deliveries: list[tuple[str, NewDelivery]]

    async def feed(self, *outcomes: Outcome) -> None:
        for outcome in outcomes:
            first = outcome.events[0]
            await self.matcher.prepare([(first.realm, first.device_id)])
            names = await self._names(first.realm)
            for delivery in self.matcher.deliveries(outcome_occurrences(outcome)):
                self.deliveries.append((names[delivery.trigger_id], delivery))

    async def _names(self, realm: str) -> dict[Any, str]:
        return {t.trigger_id: t.trigger.name for t in await self.storage.triggers.list_all(realm)}

    def events(self, name: str) -> list[SimpleEvent]:
        return [decode_simple_event(d.event) for n, d in self.deliveries if n == name]

    def queues(self, name: str) -> list[str]:
        return [d.policy for n, d in self.deliveries if n == name]


def data_trigger(on: str = "incoming_data", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "data_trigger",
        "on": on,
        "interface_name": VALUES,
        "interface_major": 1,
        "match_path": "/*",
        "value_match_operator": "*",
    }
    doc.update(fields)
    return doc


def device_trigger(on: str, **fields: Any) -> dict[str, Any]:
    return {"type": "device_trigger", "on": on, **fields}


async def install(
    storage: Storage, name: str, *simple: dict[str, Any], policy: str | None = None
) -> InstalledTrigger:
    doc: dict[str, Any] = {
        "name": name,
        "action": {"http_url": HOOK, "http_method": "post"},
        "simple_triggers": list(simple),
    }
    if policy is not None:
        doc["policy"] = policy
    return await storage.triggers.install(REALM, parse_trigger(doc, realm=REALM))


def outcome(*events: ingest.IngestEvent) -> Outcome:
    return Outcome(events=events)


def connected(device: str = DEVICE, at: datetime = T0) -> Outcome:
    return outcome(ingest.DeviceConnected(REALM, device, at, "192.0.2.7"))


def sample(value: object, path: str = "/s1/value", device: str = DEVICE) -> Outcome:
    return outcome(ingest.IncomingData(REALM, device, T0, VALUES, 1, path, value, b""))


def matcher_on(storage: Any, **options: Any) -> TriggerMatcher:
    return TriggerMatcher(storage, CollectorRegistry(), **options)


@pytest.fixture
async def matched(storage: Storage) -> AsyncIterator[Matched]:
    """A matcher that sees new triggers at once (every test installs before it feeds)."""
    matcher = matcher_on(storage, refresh_interval=0.05)
    await matcher.start()
    try:
        yield Matched(matcher, storage, [])
    finally:
        await matcher.stop()


async def test_matched_event_carries_the_ids_timestamp_and_queue(
    storage: Storage, matched: Matched
) -> None:
    policy = parse_policy(
        {
            "name": "patient",
            "maximum_capacity": 10,
            "event_ttl": 30,
            "error_handlers": [{"on": "any_error"}],
        }
    )
    await storage.policies.install(REALM, policy)
    scope = {"device_id": DEVICE}
    with_policy = await install(
        storage, "with_policy", device_trigger("device_connected", **scope), policy="patient"
    )
    plain = await install(storage, "plain", device_trigger("device_connected", **scope))
    before = time.time_ns() // 1_000_000
    await matched.feed(connected())
    assert matched.events("plain") == [
        SimpleEvent(
            REALM,
            DEVICE,
            datetime_to_millis(T0),
            plain.simple_trigger_ids[0],
            plain.trigger_id,
            fired.DeviceConnected("192.0.2.7"),
        )
    ]
    assert matched.queues("plain") == ["@default"]
    ((_, delivery),) = [d for d in matched.deliveries if d[0] == "with_policy"]
    assert delivery.policy == "patient" and delivery.trigger_id == with_policy.trigger_id
    assert delivery.event_type == "device_connected_event"
    assert delivery.expires_at is not None
    assert delivery.expires_at - delivery.enqueued_at == 30_000 and delivery.enqueued_at >= before


async def test_every_simple_trigger_of_a_trigger(storage: Storage, matched: Matched) -> None:
    both = await install(
        storage,
        "both",
        device_trigger("device_connected"),
        device_trigger("device_disconnected", device_id=DEVICE),
    )
    await matched.feed(
        connected(),
        outcome(ingest.DeviceDisconnected(REALM, DEVICE, T0)),
        outcome(ingest.DeviceDisconnected(REALM, OTHER_DEVICE, T0)),
    )
    assert [(e.simple_trigger_id, e.event) for e in matched.events("both")] == [
        (both.simple_trigger_ids[0], fired.DeviceConnected("192.0.2.7")),
        (both.simple_trigger_ids[1], fired.DeviceDisconnected()),
    ]


OPERATOR_CASES: list[tuple[str, object, object, bool]] = [
    ("*", None, 1.5, True),
    ("==", 1.5, 1.5, True),
    ("==", 1.5, 2.5, False),
    ("!=", 1.5, 2.5, True),
    ("!=", 1.5, 1.5, False),
    (">", 1, 1.5, True),
    (">", 2, 1.5, False),
    (">=", 1.5, 1.5, True),
    (">=", 2, 1.5, False),
    ("<", 2, 1.5, True),
    ("<", 1, 1.5, False),
    ("<=", 1.5, 1.5, True),
    ("<=", 1, 1.5, False),
    ("contains", "ab", "xaby", True),
    ("contains", "ba", "xaby", False),
    ("not_contains", "ba", "xaby", True),
    ("not_contains", "ab", "xaby", False),
    ("contains", "b", ["a", "b"], True),
    ("not_contains", "c", ["a", "b"], True),
]


@pytest.mark.parametrize(("operator", "known", "value", "fires"), OPERATOR_CASES)
async def test_every_value_operator(
    storage: Storage, matched: Matched, operator: str, known: object, value: object, fires: bool
) -> None:
    condition: dict[str, Any] = {"match_path": "/s1/value", "value_match_operator": operator}
    if operator != "*":
        condition["known_value"] = known
    await install(storage, "probe", data_trigger(**condition))
    await matched.feed(sample(value))
    expected = [fired.IncomingData(VALUES, "/s1/value", value)] if fires else []
    assert [event.event for event in matched.events("probe")] == expected


async def test_paths_interfaces_and_data_events(storage: Storage, matched: Matched) -> None:
    await install(storage, "exact", data_trigger(match_path="/s1/value"))
    await install(storage, "placeholder", data_trigger(match_path="/%{sensor}/value"))
    await install(
        storage,
        "any_interface",
        data_trigger(interface_name="*", interface_major=None, device_id=DEVICE),
    )
    await install(
        storage,
        "applied",
        data_trigger(
            "value_change_applied",
            interface_name=PROPS,
            interface_major=0,
            match_path="/%{name}/enabled",
        ),
    )
    await install(
        storage,
        "removed",
        data_trigger("path_removed", interface_name=PROPS, interface_major=0),
    )
    await matched.feed(
        sample(1.0, "/s1/value"),
        sample(2.0, "/s2/value"),
        sample(3.0, "/s3/value", OTHER_DEVICE),
        outcome(
            ingest.IncomingData(REALM, DEVICE, T0, PROPS, 0, "/lamp/enabled", None, b""),
            ingest.PropertyChanged(REALM, DEVICE, T0, PROPS, 0, "/lamp/enabled", True, None),
        ),
    )

    def paths(name: str) -> list[tuple[str, str]]:
        return [(e.device_id, getattr(e.event, "path", "")) for e in matched.events(name)]

    assert paths("exact") == [(DEVICE, "/s1/value")]
    assert paths("placeholder") == [
        (DEVICE, "/s1/value"),
        (DEVICE, "/s2/value"),
        (OTHER_DEVICE, "/s3/value"),
    ]
    assert paths("any_interface") == [
        (DEVICE, "/s1/value"),
        (DEVICE, "/s2/value"),
        (DEVICE, "/lamp/enabled"),
    ]
    assert [e.event for e in matched.events("applied")] == [
        fired.ValueChangeApplied(PROPS, "/lamp/enabled", True, None)
    ]
    assert [e.event for e in matched.events("removed")] == [
        fired.PathRemoved(PROPS, "/lamp/enabled")
    ]


async def test_interface_device_triggers(storage: Storage, matched: Matched) -> None:
    await install(
        storage,
        "added",
        device_trigger("interface_added", interface_name=VALUES, interface_major=2),
    )
    await install(storage, "any_added", device_trigger("interface_added", interface_name="*"))
    await install(
        storage,
        "minor",
        device_trigger("interface_minor_updated", interface_name=PROPS, interface_major=0),
    )
    await install(storage, "removed", device_trigger("interface_removed", interface_name="*"))
    previous = {VALUES: (1, 0), PROPS: (0, 1)}
    current = {VALUES: (2, 0), PROPS: (0, 2)}
    await matched.feed(outcome(ingest.IntrospectionReceived(REALM, DEVICE, T0, previous, current)))
    assert [e.event for e in matched.events("added")] == [fired.InterfaceAdded(VALUES, 2, 0)]
    assert [e.event for e in matched.events("any_added")] == [fired.InterfaceAdded(VALUES, 2, 0)]
    assert [e.event for e in matched.events("minor")] == [
        fired.InterfaceMinorUpdated(PROPS, 0, 1, 2)
    ]
    assert [e.event for e in matched.events("removed")] == [fired.InterfaceRemoved(VALUES, 1)]


def join_group(db_path: Path, device: str, group: str) -> None:
    """Group membership straight into the database: no repository writes groups yet."""
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute(
            "INSERT INTO group_members (realm, device_id, group_name, insertion_id)"
            " VALUES (?, ?, ?, (SELECT COALESCE(MAX(insertion_id), 0) + 1 FROM group_members))",
            (REALM, decode_device_id(device), group),
        )


class CountingDevices:
    """Counts device reads, to show when matching loads groups."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    async def get(self, realm: str, device_id: str) -> Any:
        self.reads += 1
        return await self.inner.get(realm, device_id)


async def test_group_scope_reads_groups_only_when_needed_and_caches_them(
    storage: Storage, db_path: Path
) -> None:
    for device in (DEVICE, OTHER_DEVICE):
        await storage.devices.register(REALM, device, "hash", {}, T0)
    join_group(db_path, DEVICE, "floor-1")
    devices = CountingDevices(storage.devices)
    view = SimpleNamespace(triggers=storage.triggers, policies=storage.policies, devices=devices)
    matched = Matched(matcher_on(view, refresh_interval=0.05), storage, [])
    await matched.matcher.start()
    try:
        await install(storage, "everyone", device_trigger("device_connected"))
        await matched.feed(connected(DEVICE))
        assert len(matched.events("everyone")) == 1 and devices.reads == 0
        await install(storage, "floor", device_trigger("device_connected", group_name="floor-1"))
        matched.matcher.invalidate(REALM)
        await matched.feed(*(connected(device) for device in (DEVICE, OTHER_DEVICE) * 2))
    finally:
        await matched.matcher.stop()
    assert [e.device_id for e in matched.events("floor")] == [DEVICE, DEVICE]
    assert devices.reads == 2  # once per device, then from the cache


async def test_install_and_delete_take_effect_within_a_second(storage: Storage) -> None:
    """With the default refresh interval, as `astraea up` runs it, and without being told."""
    matched = Matched(matcher_on(storage), storage, [])
    await matched.matcher.start()
    try:
        await matched.feed(sample(1.0))  # the realm is now known, with no trigger
        installed = await install(storage, "late", data_trigger())
        installed_at = time.monotonic()
        while not any(d.trigger_id == installed.trigger_id for _, d in matched.deliveries):
            assert time.monotonic() - installed_at < 1.0, "the new trigger never fired"
            await matched.feed(sample(2.0))
            await asyncio.sleep(0.02)
        fired_before = len(matched.deliveries)
        assert await storage.triggers.delete(REALM, "late")
        await asyncio.sleep(1.0)
        for value in range(20):
            await matched.matcher.prepare([(REALM, DEVICE)])
            assert matched.matcher.deliveries(outcome_occurrences(sample(float(value)))) == []
    finally:
        await matched.matcher.stop()
    assert fired_before >= 1


async def test_invalidate_reloads_at_once(storage: Storage) -> None:
    """What the bus tells ingestion when Realm Management changes a trigger."""
    matched = Matched(matcher_on(storage, refresh_interval=60), storage, [])
    await matched.feed(sample(1.0))
    await install(storage, "now", data_trigger())
    await matched.feed(sample(2.0))
    assert matched.events("now") == []  # the next poll is a minute away
    matched.matcher.invalidate(REALM)
    await matched.feed(sample(3.0))
    assert [e.event for e in matched.events("now")] == [
        fired.IncomingData(VALUES, "/s1/value", 3.0)
    ]


async def test_device_registered(storage: Storage, matched: Matched) -> None:
    await install(storage, "registered", device_trigger("device_registered"))
    await matched.feed(outcome(ingest.DeviceRegistered(REALM, DEVICE, T0)))
    assert [(e.device_id, e.timestamp_ms, e.event) for e in matched.events("registered")] == [
        (DEVICE, datetime_to_millis(T0), fired.DeviceRegistered())
    ]


async def test_realms_without_triggers_cost_one_load(storage: Storage) -> None:
    await storage.realms.create(Realm(name="quiet", jwt_public_key_pem="pem"))
    reads: list[str] = []

    class CountingTriggers:
        async def triggers_version(self, realm: str) -> int:
            return int(await storage.triggers.triggers_version(realm))

        async def list_all(self, realm: str) -> list[InstalledTrigger]:
            reads.append(realm)
            return list(await storage.triggers.list_all(realm))

    view = SimpleNamespace(
        triggers=CountingTriggers(), policies=storage.policies, devices=storage.devices
    )
    matcher = matcher_on(view)
    quiet = outcome(ingest.DeviceConnected("quiet", DEVICE, T0, "192.0.2.7"))
    for _ in range(100):
        await matcher.prepare([("quiet", DEVICE)])
        assert matcher.deliveries(outcome_occurrences(quiet)) == []
    assert reads == ["quiet"]
    known = matcher.triggers_of("quiet")
    assert known is not None and known.empty
