"""Trigger events: the exact JSON of every event type, the default body, Mustache variables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from astraea.core.trigger_events import (
    EVENT_TYPES,
    DeviceConnected,
    DeviceDeletionFinished,
    DeviceDeletionStarted,
    DeviceDisconnected,
    DeviceError,
    DeviceRegistered,
    Event,
    IncomingData,
    IncomingIntrospection,
    InterfaceAdded,
    InterfaceMinorUpdated,
    InterfaceRemoved,
    InterfaceVersion,
    PathCreated,
    PathRemoved,
    SimpleEvent,
    ValueChange,
    ValueChangeApplied,
    ValueStored,
    default_http_body,
    event_to_json,
    event_type,
    mustache_context,
)

IFACE = "org.example.Sensors"
STAMP = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)

CASES: list[tuple[Event, dict[str, object]]] = [
    (DeviceConnected("1.2.3.4"), {"type": "device_connected", "device_ip_address": "1.2.3.4"}),
    (DeviceDisconnected(), {"type": "device_disconnected"}),
    (DeviceRegistered(), {"type": "device_registered"}),
    (DeviceDeletionStarted(), {"type": "device_deletion_started"}),
    (DeviceDeletionFinished(), {"type": "device_deletion_finished"}),
    (
        DeviceError("write_on_server_owned_interface", {"base64_payload": "AAE="}),
        {
            "type": "device_error",
            "error_name": "write_on_server_owned_interface",
            "metadata": {"base64_payload": "AAE="},
        },
    ),
    (
        IncomingData(IFACE, "/a/value", 21.5),
        {"type": "incoming_data", "interface": IFACE, "path": "/a/value", "value": 21.5},
    ),
    (
        ValueStored(IFACE, "/a/blob", b"\x00\x01"),
        {"type": "value_stored", "interface": IFACE, "path": "/a/blob", "value": "AAE="},
    ),
    (
        PathCreated(IFACE, "/a/when", STAMP),
        {
            "type": "path_created",
            "interface": IFACE,
            "path": "/a/when",
            "value": "2024-05-06T07:08:09.123Z",
        },
    ),
    (PathRemoved(IFACE, "/a/x"), {"type": "path_removed", "interface": IFACE, "path": "/a/x"}),
    (
        ValueChange(IFACE, "/p", None, [b"\xff", b""]),
        {
            "type": "value_change",
            "interface": IFACE,
            "path": "/p",
            "old_value": None,
            "new_value": ["/w==", ""],
        },
    ),
    (
        ValueChangeApplied(IFACE, "/p", 1, 2),
        {
            "type": "value_change_applied",
            "interface": IFACE,
            "path": "/p",
            "old_value": 1,
            "new_value": 2,
        },
    ),
    (
        IncomingIntrospection({IFACE: InterfaceVersion(1, 2), "org.Other": InterfaceVersion(0, 3)}),
        {
            "type": "incoming_introspection",
            "introspection": {
                IFACE: {"major": 1, "minor": 2},
                "org.Other": {"major": 0, "minor": 3},
            },
        },
    ),
    (
        InterfaceAdded(IFACE, 1, 2),
        {"type": "interface_added", "interface": IFACE, "major_version": 1, "minor_version": 2},
    ),
    (
        InterfaceRemoved(IFACE, 1),
        {"type": "interface_removed", "interface": IFACE, "major_version": 1},
    ),
    (
        InterfaceMinorUpdated(IFACE, 1, 2, 3),
        {
            "type": "interface_minor_updated",
            "interface": IFACE,
            "major_version": 1,
            "old_minor_version": 2,
            "new_minor_version": 3,
        },
    ),
]


def simple(event: Event) -> SimpleEvent:
    return SimpleEvent(
        realm="test",
        device_id="ydqBlFsGQ--xZ-_efQxuLw",
        timestamp_ms=1_714_979_289_123,
        simple_trigger_id=uuid.UUID(int=1),
        parent_trigger_id=uuid.UUID(int=2),
        event=event,
    )


def test_every_event_type_has_a_case() -> None:
    assert {type(event) for event, _ in CASES} == set(EVENT_TYPES)


@pytest.mark.parametrize(("event", "expected"), CASES, ids=[event.KIND for event, _ in CASES])
def test_event_json(event: Event, expected: dict[str, object]) -> None:
    rendered = event_to_json(event)
    assert rendered == expected
    assert list(rendered) == list(expected)  # key order as documented


def test_object_aggregate_value_is_a_json_object() -> None:
    event = IncomingData(IFACE, "/a", {"temp": 1.5, "raw": b"\x01", "at": STAMP})
    assert event_to_json(event)["value"] == {
        "temp": 1.5,
        "raw": "AQ==",
        "at": "2024-05-06T07:08:09.123Z",
    }


def test_default_http_body() -> None:
    body = default_http_body(simple(DeviceConnected("10.0.0.1")), "my_trigger")
    assert body == {
        "timestamp": "2024-05-06T07:08:09.123Z",
        "device_id": "ydqBlFsGQ--xZ-_efQxuLw",
        "event": {"type": "device_connected", "device_ip_address": "10.0.0.1"},
        "trigger_name": "my_trigger",
    }
    assert list(body) == ["timestamp", "device_id", "event", "trigger_name"]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        (DeviceConnected("1"), "device_connected_event"),
        (IncomingData(IFACE, "/a", 1), "incoming_data_event"),
        (ValueChangeApplied(IFACE, "/a", 1, 2), "value_change_applied_event"),
        (DeviceDeletionFinished(), "device_deletion_finished_event"),
    ],
)
def test_event_type_names(event: Event, name: str) -> None:
    assert event_type(event) == name


def test_mustache_context_of_a_connection() -> None:
    context = mustache_context(simple(DeviceConnected("172.18.0.1")), "example_mustache_trigger")
    assert context == {
        "realm": "test",
        "device_id": "ydqBlFsGQ--xZ-_efQxuLw",
        "trigger_name": "example_mustache_trigger",
        "event_type": "device_connected_event",
        "device_ip_address": "172.18.0.1",
    }


def test_mustache_context_renames_bson_values_and_encodes_binaries() -> None:
    context = mustache_context(simple(ValueChange(IFACE, "/p", b"\x00", 3)), "t")
    assert context["old_value"] == "AA==" and context["new_value"] == 3
    assert context["interface"] == IFACE and context["path"] == "/p"
    assert mustache_context(simple(IncomingData(IFACE, "/p", "x")), "t")["value"] == "x"


def test_mustache_context_of_introspection_and_versions() -> None:
    context = mustache_context(simple(IncomingIntrospection({IFACE: InterfaceVersion(1, 0)})), "t")
    assert context["introspection_map"] == {IFACE: {"major": 1, "minor": 0}}
    context = mustache_context(simple(InterfaceAdded(IFACE, 2, 5)), "t")
    assert (context["major_version"], context["minor_version"]) == (2, 5)
    context = mustache_context(simple(DeviceError("e", {"k": "v"})), "t")
    assert context["error_name"] == "e" and context["metadata"] == {"k": "v"}
