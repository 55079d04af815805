"""The trigger evaluator on real SQLite storage: ingestion outcomes in, matched events out.

A `Recorder` stands in for the engine where the test is about what gets submitted; one test
runs the real engine to a real receiver. `settle()` waits until every outcome queued so far is
evaluated: the evaluator keeps arrival order, so once a sentinel trigger fired on a later
outcome, everything before it was evaluated too.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from trigger_support import DEVICE, OTHER_DEVICE, EngineFactory, Receiver, eventually

from astraea.core import trigger_events as fired
from astraea.core.device_id import decode_device_id
from astraea.core.trigger_events import SimpleEvent
from astraea.core.trigger_policies import Policy, parse_policy
from astraea.core.triggers import InstalledTrigger, Trigger, parse_trigger
from astraea.core.values import datetime_to_millis
from astraea.ingest import events as ingest
from astraea.ingest.messages import Outcome
from astraea.storage.base import Realm, Storage
from astraea.triggers.evaluator import TriggerEvaluator

REALM = "test"
SENTINEL = "AAAAAAAAAAAAAAAAAAAAAA"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
VALUES = "org.example.Values"
PROPS = "org.example.Props"
HOOK = "http://127.0.0.1:9/hook"


@dataclass
class Recorder:
    """An `EventSink` that keeps what it is given; `fail_on` makes one trigger's submit raise."""

    submitted: list[tuple[Trigger, Policy | None, SimpleEvent]] = field(default_factory=list)
    fail_on: str | None = None

    def submit(self, trigger: Trigger, policy: Policy | None, event: SimpleEvent) -> None:
        if trigger.name == self.fail_on:
            raise RuntimeError("the engine is not running")
        self.submitted.append((trigger, policy, event))

    def events(self, name: str) -> list[SimpleEvent]:
        return [event for trigger, _, event in self.submitted if trigger.name == name]


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


Settle = Callable[[], Awaitable[None]]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def evaluator(storage: Storage, recorder: Recorder) -> AsyncIterator[TriggerEvaluator]:
    await install(storage, "sentinel", device_trigger("device_connected", device_id=SENTINEL))
    running = TriggerEvaluator(storage, recorder, refresh_interval=0.05)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def settle(evaluator: TriggerEvaluator, recorder: Recorder) -> Settle:
    async def wait() -> None:
        count = len(recorder.events("sentinel")) + 1
        evaluator.on_outcome(connected(SENTINEL))
        await eventually(lambda: len(recorder.events("sentinel")) >= count, timeout=5)

    return wait


async def test_matched_event_carries_the_ids_timestamp_and_policy(
    storage: Storage, evaluator: TriggerEvaluator, recorder: Recorder, settle: Settle
) -> None:
    policy = parse_policy(
        {"name": "patient", "maximum_capacity": 10, "error_handlers": [{"on": "any_error"}]}
    )
    await storage.policies.install(REALM, policy)
    scope = {"device_id": DEVICE}
    with_policy = await install(
        storage, "with_policy", device_trigger("device_connected", **scope), policy="patient"
    )
    plain = await install(storage, "plain", device_trigger("device_connected", **scope))
    await asyncio.sleep(0.2)  # the refresh picks them up
    evaluator.on_outcome(connected())
    await settle()
    expected = fired.DeviceConnected("192.0.2.7")
    ((trigger, given_policy, event),) = [s for s in recorder.submitted if s[0].name == "plain"]
    assert trigger == plain.trigger and given_policy is None
    assert event == SimpleEvent(
        REALM,
        DEVICE,
        datetime_to_millis(T0),
        plain.simple_trigger_ids[0],
        plain.trigger_id,
        expected,
    )
    ((_, given_policy, event),) = [s for s in recorder.submitted if s[0].name == "with_policy"]
    assert given_policy == policy
    assert event.parent_trigger_id == with_policy.trigger_id


async def test_triggers_installed_before_start_and_every_simple_trigger(
    storage: Storage, recorder: Recorder
) -> None:
    both = await install(
        storage,
        "both",
        device_trigger("device_connected"),
        device_trigger("device_disconnected", device_id=DEVICE),
    )
    evaluator = TriggerEvaluator(storage, recorder)
    await evaluator.start()
    evaluator.on_outcome(connected())
    evaluator.on_outcome(outcome(ingest.DeviceDisconnected(REALM, DEVICE, T0)))
    evaluator.on_outcome(outcome(ingest.DeviceDisconnected(REALM, OTHER_DEVICE, T0)))
    await evaluator.stop()
    assert [(e.simple_trigger_id, e.event) for e in recorder.events("both")] == [
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
    storage: Storage,
    evaluator: TriggerEvaluator,
    recorder: Recorder,
    settle: Settle,
    operator: str,
    known: object,
    value: object,
    fires: bool,
) -> None:
    condition: dict[str, Any] = {"match_path": "/s1/value", "value_match_operator": operator}
    if operator != "*":
        condition["known_value"] = known
    await install(storage, "probe", data_trigger(**condition))
    await asyncio.sleep(0.2)
    evaluator.on_outcome(sample(value))
    await settle()
    expected = [fired.IncomingData(VALUES, "/s1/value", value)] if fires else []
    assert [event.event for event in recorder.events("probe")] == expected


async def test_paths_interfaces_and_data_events(
    storage: Storage, evaluator: TriggerEvaluator, recorder: Recorder, settle: Settle
) -> None:
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
    await asyncio.sleep(0.2)
    evaluator.on_outcome(sample(1.0, "/s1/value"))
    evaluator.on_outcome(sample(2.0, "/s2/value"))
    evaluator.on_outcome(sample(3.0, "/s3/value", OTHER_DEVICE))
    evaluator.on_outcome(
        outcome(
            ingest.IncomingData(REALM, DEVICE, T0, PROPS, 0, "/lamp/enabled", None, b""),
            ingest.PropertyChanged(REALM, DEVICE, T0, PROPS, 0, "/lamp/enabled", True, None),
        )
    )
    await settle()

    def paths(name: str) -> list[tuple[str, str]]:
        return [(e.device_id, getattr(e.event, "path", "")) for e in recorder.events(name)]

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
    assert [e.event for e in recorder.events("applied")] == [
        fired.ValueChangeApplied(PROPS, "/lamp/enabled", True, None)
    ]
    assert [e.event for e in recorder.events("removed")] == [
        fired.PathRemoved(PROPS, "/lamp/enabled")
    ]


async def test_interface_device_triggers(
    storage: Storage, evaluator: TriggerEvaluator, recorder: Recorder, settle: Settle
) -> None:
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
    await asyncio.sleep(0.2)
    previous = {VALUES: (1, 0), PROPS: (0, 1)}
    current = {VALUES: (2, 0), PROPS: (0, 2)}
    evaluator.on_outcome(
        outcome(ingest.IntrospectionReceived(REALM, DEVICE, T0, previous, current))
    )
    await settle()
    assert [e.event for e in recorder.events("added")] == [fired.InterfaceAdded(VALUES, 2, 0)]
    assert [e.event for e in recorder.events("any_added")] == [fired.InterfaceAdded(VALUES, 2, 0)]
    assert [e.event for e in recorder.events("minor")] == [
        fired.InterfaceMinorUpdated(PROPS, 0, 1, 2)
    ]
    assert [e.event for e in recorder.events("removed")] == [fired.InterfaceRemoved(VALUES, 1)]


def join_group(db_path: Path, device: str, group: str) -> None:
    """Group membership straight into the database: no repository writes groups yet."""
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute(
            "INSERT INTO group_members (realm, device_id, group_name, insertion_id)"
            " VALUES (?, ?, ?, (SELECT COALESCE(MAX(insertion_id), 0) + 1 FROM group_members))",
            (REALM, decode_device_id(device), group),
        )


class CountingDevices:
    """Counts device reads, to show when the evaluator loads groups."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = 0

    async def get(self, realm: str, device_id: str) -> Any:
        self.reads += 1
        return await self.inner.get(realm, device_id)


async def test_group_scope_reads_groups_only_when_needed_and_caches_them(
    storage: Storage, db_path: Path, recorder: Recorder
) -> None:
    for device in (DEVICE, OTHER_DEVICE):
        await storage.devices.register(REALM, device, "hash", {}, T0)
    join_group(db_path, DEVICE, "floor-1")
    devices = CountingDevices(storage.devices)
    view = SimpleNamespace(triggers=storage.triggers, policies=storage.policies, devices=devices)
    evaluator = TriggerEvaluator(view, recorder, refresh_interval=0.05)  # type: ignore[arg-type]
    await evaluator.start()
    try:
        await install(storage, "everyone", device_trigger("device_connected"))
        evaluator.on_outcome(connected(DEVICE))
        await eventually(lambda: len(recorder.events("everyone")) == 1, timeout=5)
        assert devices.reads == 0
        await install(storage, "floor", device_trigger("device_connected", group_name="floor-1"))
        await asyncio.sleep(0.2)  # the refresh picks it up
        for device in (DEVICE, OTHER_DEVICE, DEVICE, OTHER_DEVICE):
            evaluator.on_outcome(connected(device))
    finally:
        await evaluator.stop()
    assert [e.device_id for e in recorder.events("floor")] == [DEVICE, DEVICE]
    assert devices.reads == 2  # once per device, then from the cache


async def test_install_and_delete_take_effect_within_a_second(
    storage: Storage, recorder: Recorder
) -> None:
    """With the default refresh interval, as `astraea up` runs it."""
    evaluator = TriggerEvaluator(storage, recorder)
    await evaluator.start()
    try:
        evaluator.on_outcome(sample(1.0))  # the realm is now known, with no trigger
        await asyncio.sleep(0.1)
        await install(storage, "late", data_trigger())
        installed_at = time.monotonic()
        while not recorder.events("late"):
            assert time.monotonic() - installed_at < 1.0, "the new trigger never fired"
            evaluator.on_outcome(sample(2.0))
            await asyncio.sleep(0.02)
        assert await storage.triggers.delete(REALM, "late")
        await asyncio.sleep(1.0)
        fired_before = len(recorder.events("late"))
        for value in range(20):
            evaluator.on_outcome(sample(float(value)))
    finally:
        await evaluator.stop()
    assert len(recorder.events("late")) == fired_before


class BlockedTriggers:
    """Trigger reads that wait until `release` is set, as on a stalled database."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.release = asyncio.Event()

    async def triggers_version(self, realm: str) -> int:
        await self.release.wait()
        return int(await self.inner.triggers_version(realm))

    async def list_all(self, realm: str) -> list[InstalledTrigger]:
        await self.release.wait()
        return list(await self.inner.list_all(realm))


async def test_ingestion_never_waits_and_each_device_keeps_its_order(
    storage: Storage, recorder: Recorder
) -> None:
    await install(storage, "all", data_trigger())
    triggers = BlockedTriggers(storage.triggers)
    view = SimpleNamespace(triggers=triggers, policies=storage.policies, devices=storage.devices)
    evaluator = TriggerEvaluator(view, recorder)  # type: ignore[arg-type]
    await evaluator.start()
    try:
        started = time.monotonic()
        for value in range(200):
            evaluator.on_outcome(sample(float(value), device=(DEVICE, OTHER_DEVICE)[value % 2]))
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(0.05)
        assert recorder.submitted == []
        triggers.release.set()
    finally:
        await evaluator.stop()  # evaluates everything queued first
    for device, first in ((DEVICE, 0), (OTHER_DEVICE, 1)):
        values = [
            getattr(e.event, "value", None) for e in recorder.events("all") if e.device_id == device
        ]
        assert values == [float(v) for v in range(first, 200, 2)]


async def test_a_failing_submission_does_not_stop_evaluation(
    storage: Storage, evaluator: TriggerEvaluator, recorder: Recorder, settle: Settle
) -> None:
    await install(storage, "broken", device_trigger("device_connected", device_id=DEVICE))
    await install(storage, "working", device_trigger("device_connected", device_id=OTHER_DEVICE))
    await asyncio.sleep(0.2)
    recorder.fail_on = "broken"
    evaluator.on_outcome(connected(DEVICE))
    evaluator.on_outcome(connected(OTHER_DEVICE))
    await settle()
    assert [e.device_id for e in recorder.events("working")] == [OTHER_DEVICE]


async def test_device_registered(
    storage: Storage, evaluator: TriggerEvaluator, recorder: Recorder, settle: Settle
) -> None:
    await install(storage, "registered", device_trigger("device_registered"))
    await asyncio.sleep(0.2)
    evaluator.device_registered(REALM, DEVICE, T0)
    await settle()
    assert [(e.device_id, e.timestamp_ms, e.event) for e in recorder.events("registered")] == [
        (DEVICE, datetime_to_millis(T0), fired.DeviceRegistered())
    ]


async def test_realms_without_triggers_cost_one_load(storage: Storage, recorder: Recorder) -> None:
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
    evaluator = TriggerEvaluator(view, recorder)  # type: ignore[arg-type]
    await evaluator.start()
    quiet = ingest.DeviceConnected("quiet", DEVICE, T0, "192.0.2.7")
    try:
        evaluator.on_outcome(outcome(quiet))
        await eventually(lambda: reads == ["quiet"], timeout=5)
        for _ in range(100):
            evaluator.on_outcome(outcome(quiet))
    finally:
        await evaluator.stop()
    assert reads == ["quiet"] and recorder.submitted == []


async def test_default_json_reaches_a_real_receiver(
    storage: Storage, start_engine: EngineFactory, receiver: Receiver
) -> None:
    engine = await start_engine()
    url = receiver.respond("/hook", 200)
    doc = {
        "name": "values",
        "action": {"http_url": url, "http_method": "post"},
        "simple_triggers": [
            data_trigger(match_path="/%{sensor}/value", value_match_operator=">", known_value=20)
        ],
    }
    await storage.triggers.install(REALM, parse_trigger(doc, realm=REALM))
    evaluator = TriggerEvaluator(storage, engine)
    await evaluator.start()
    try:
        stamp = T0 + timedelta(milliseconds=250)
        for value in (19.5, 21.5):
            evaluator.on_outcome(
                outcome(
                    ingest.IncomingData(
                        REALM, DEVICE, T0, VALUES, 1, "/s1/value", value, b"", stamp
                    )
                )
            )
        (request,) = await receiver.wait_for("/hook", 1)
    finally:
        await evaluator.stop()
    assert orjson.loads(request.body) == {
        "timestamp": "2024-05-01T12:00:00.250Z",
        "device_id": DEVICE,
        "event": {"type": "incoming_data", "interface": VALUES, "path": "/s1/value", "value": 21.5},
        "trigger_name": "values",
    }
    await asyncio.sleep(0.2)
    assert len(receiver.at("/hook")) == 1
