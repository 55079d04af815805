"""The hand-written SimpleEvent codec against the protobuf runtime, built from Astarte's schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from astraea.core.simple_event_codec import (
    DecodeError,
    decode_simple_event,
    encode_simple_event,
)
from astraea.core.trigger_events import (
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
)

F = descriptor_pb2.FieldDescriptorProto
STRING, BYTES, INT32, INT64, MESSAGE = (
    F.TYPE_STRING,
    F.TYPE_BYTES,
    F.TYPE_INT32,
    F.TYPE_INT64,
    F.TYPE_MESSAGE,
)

# Astarte's messages (§6 of the reference): name -> [(field, number, type, message type)].
SCHEMA: dict[str, list[tuple[str, int, int, str | None]]] = {
    "DeviceConnectedEvent": [("device_ip_address", 1, STRING, None)],
    "DeviceDisconnectedEvent": [],
    "DeviceRegisteredEvent": [],
    "DeviceDeletionStartedEvent": [],
    "DeviceDeletionFinishedEvent": [],
    "IncomingDataEvent": [
        ("interface", 1, STRING, None),
        ("path", 2, STRING, None),
        ("bson_value", 3, BYTES, None),
    ],
    "ValueStoredEvent": [
        ("interface", 1, STRING, None),
        ("path", 2, STRING, None),
        ("bson_value", 3, BYTES, None),
    ],
    "PathCreatedEvent": [
        ("interface", 1, STRING, None),
        ("path", 2, STRING, None),
        ("bson_value", 3, BYTES, None),
    ],
    "PathRemovedEvent": [("interface", 1, STRING, None), ("path", 2, STRING, None)],
    "ValueChangeEvent": [
        ("interface", 1, STRING, None),
        ("path", 2, STRING, None),
        ("old_bson_value", 3, BYTES, None),
        ("new_bson_value", 4, BYTES, None),
    ],
    "ValueChangeAppliedEvent": [
        ("interface", 1, STRING, None),
        ("path", 2, STRING, None),
        ("old_bson_value", 3, BYTES, None),
        ("new_bson_value", 4, BYTES, None),
    ],
    "InterfaceVersion": [("major", 1, INT32, None), ("minor", 2, INT32, None)],
    "InterfaceAddedEvent": [
        ("interface", 1, STRING, None),
        ("major_version", 2, INT32, None),
        ("minor_version", 3, INT32, None),
    ],
    "InterfaceRemovedEvent": [("interface", 1, STRING, None), ("major_version", 2, INT32, None)],
    "InterfaceMinorUpdatedEvent": [
        ("interface", 1, STRING, None),
        ("major_version", 2, INT32, None),
        ("old_minor_version", 3, INT32, None),
        ("new_minor_version", 4, INT32, None),
    ],
}
ONEOF = [
    ("device_connected_event", 6, "DeviceConnectedEvent"),
    ("device_disconnected_event", 7, "DeviceDisconnectedEvent"),
    ("incoming_data_event", 8, "IncomingDataEvent"),
    ("value_change_event", 9, "ValueChangeEvent"),
    ("value_change_applied_event", 10, "ValueChangeAppliedEvent"),
    ("path_created_event", 11, "PathCreatedEvent"),
    ("path_removed_event", 12, "PathRemovedEvent"),
    ("value_stored_event", 13, "ValueStoredEvent"),
    ("incoming_introspection_event", 14, "IncomingIntrospectionEvent"),
    ("interface_added_event", 15, "InterfaceAddedEvent"),
    ("interface_removed_event", 16, "InterfaceRemovedEvent"),
    ("interface_minor_updated_event", 17, "InterfaceMinorUpdatedEvent"),
    ("device_error_event", 19, "DeviceErrorEvent"),
    ("device_registered_event", 20, "DeviceRegisteredEvent"),
    ("device_deletion_started_event", 21, "DeviceDeletionStartedEvent"),
    ("device_deletion_finished_event", 22, "DeviceDeletionFinishedEvent"),
]


def _field(
    message: Any, name: str, number: int, kind: int, type_name: str | None, **extra: Any
) -> None:
    field = message.field.add(
        name=name, number=number, type=kind, label=extra.pop("label", F.LABEL_OPTIONAL)
    )
    if type_name:
        field.type_name = f".astarte.{type_name}"
    for key, value in extra.items():
        setattr(field, key, value)


def _map(message: Any, name: str, number: int, value_type: int, value_message: str | None) -> None:
    entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, STRING, None)
    _field(entry, "value", 2, value_type, value_message)
    _field(message, name, number, MESSAGE, f"{message.name}.{entry_name}", label=F.LABEL_REPEATED)


@pytest.fixture(scope="module")
def SimpleEventProto() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="astarte_events.proto", package="astarte", syntax="proto3"
    )
    for name, fields in SCHEMA.items():
        message = file.message_type.add(name=name)
        for field in fields:
            _field(message, *field)
    error = file.message_type.add(name="DeviceErrorEvent")
    _field(error, "error_name", 1, STRING, None)
    _map(error, "metadata", 2, STRING, None)
    introspection = file.message_type.add(name="IncomingIntrospectionEvent")
    _field(introspection, "introspection", 1, STRING, None)
    _map(introspection, "introspection_map", 2, MESSAGE, "InterfaceVersion")
    simple = file.message_type.add(name="SimpleEvent")
    simple.oneof_decl.add(name="event")
    for field in [
        ("version", 1, INT32, None),
        ("simple_trigger_id", 2, BYTES, None),
        ("parent_trigger_id", 3, BYTES, None),
        ("realm", 4, STRING, None),
        ("device_id", 5, STRING, None),
        ("timestamp", 18, INT64, None),
    ]:
        _field(simple, *field)
    for name, number, type_name in ONEOF:
        _field(simple, name, number, MESSAGE, type_name, oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("astarte.SimpleEvent"))


STAMP = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
EVENTS: list[Event] = [
    DeviceConnected("192.168.1.7"),
    DeviceDisconnected(),
    DeviceRegistered(),
    DeviceDeletionStarted(),
    DeviceDeletionFinished(),
    DeviceError("invalid_path", {"path": "/x", "base64_payload": "AAE="}),
    IncomingData("org.example.I", "/a/b", 21.5),
    ValueStored("org.example.I", "/a/b", [b"\x00", b"\xff"]),
    PathCreated("org.example.I", "/a/t", STAMP),
    PathRemoved("org.example.I", "/a/b"),
    ValueChange("org.example.I", "/p", None, "new"),
    ValueChangeApplied("org.example.I", "/p", 2**40, -3),
    IncomingData("org.example.O", "/obj", {"x": 1.5, "on": True, "raw": b"\x01"}),
    IncomingIntrospection(
        {"org.example.I": InterfaceVersion(1, 2), "org.B": InterfaceVersion(0, 0)}
    ),
    InterfaceAdded("org.example.I", 1, 0),
    InterfaceRemoved("org.example.I", 2),
    InterfaceMinorUpdated("org.example.I", 1, 2, 3),
]


def simple(event: Event) -> SimpleEvent:
    return SimpleEvent(
        realm="test",
        device_id="ydqBlFsGQ--xZ-_efQxuLw",
        timestamp_ms=1_704_164_645_678,
        simple_trigger_id=uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
        parent_trigger_id=uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8"),
        event=event,
    )


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.KIND)
def test_round_trip(event: Event) -> None:
    assert decode_simple_event(encode_simple_event(simple(event))) == simple(event)


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.KIND)
def test_protobuf_runtime_reads_our_bytes(SimpleEventProto: Any, event: Event) -> None:
    parsed = SimpleEventProto.FromString(encode_simple_event(simple(event)))
    assert parsed.realm == "test"
    assert parsed.device_id == "ydqBlFsGQ--xZ-_efQxuLw"
    assert parsed.timestamp == 1_704_164_645_678
    assert uuid.UUID(bytes=parsed.simple_trigger_id) == simple(event).simple_trigger_id
    assert uuid.UUID(bytes=parsed.parent_trigger_id) == simple(event).parent_trigger_id
    assert parsed.WhichOneof("event") == f"{event.KIND}_event"
    inner = getattr(parsed, f"{event.KIND}_event")
    if isinstance(event, IncomingData | ValueStored | PathCreated):
        assert (inner.interface, inner.path) == (event.interface, event.path)
        assert (
            bson.decode(inner.bson_value, codec_options=bson.CodecOptions(tz_aware=True))["v"]
            == event.value
        )
    elif isinstance(event, ValueChange | ValueChangeApplied):
        if event.old_value is None:
            assert inner.old_bson_value == b""  # unset: the field is absent
        assert bson.decode(inner.new_bson_value)["v"] == event.new_value
    elif isinstance(event, IncomingIntrospection):
        assert {name: (v.major, v.minor) for name, v in inner.introspection_map.items()} == {
            name: (v.major, v.minor) for name, v in event.introspection.items()
        }
        assert inner.introspection == "org.example.I:1:2;org.B:0:0"
    elif isinstance(event, DeviceError):
        assert inner.error_name == event.error_name and dict(inner.metadata) == event.metadata
    elif isinstance(event, DeviceConnected):
        assert inner.device_ip_address == event.device_ip_address
    elif isinstance(event, InterfaceMinorUpdated):
        assert (inner.major_version, inner.old_minor_version, inner.new_minor_version) == (1, 2, 3)


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.KIND)
def test_we_read_the_runtime_bytes(SimpleEventProto: Any, event: Event) -> None:
    """The runtime omits proto3 defaults (zero, empty); decoding fills them back in."""
    ours = SimpleEventProto.FromString(encode_simple_event(simple(event)))
    assert decode_simple_event(ours.SerializeToString()) == simple(event)


def test_unknown_fields_are_skipped(SimpleEventProto: Any) -> None:
    data = encode_simple_event(simple(DeviceDisconnected()))
    # Field 30 as a varint, field 31 as fixed32: a newer schema's additions (two-byte keys).
    extended = data + bytes([0xF0, 0x01, 5, 0xFD, 0x01, 1, 2, 3, 4])
    assert decode_simple_event(extended) == simple(DeviceDisconnected())


@pytest.mark.parametrize(
    "data",
    [b"", b"\x22\x05ab", b"\xff\xff", encode_simple_event(simple(DeviceDisconnected()))[:-3]],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_simple_event(data)
