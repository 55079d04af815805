"""Astarte's `SimpleEvent` protobuf encoding (sans-IO), for AMQP bodies and the durable queue.

Why a hand-written codec rather than message classes built at runtime from a descriptor: the
messages are small and fixed (strings, int32/int64, bytes, two maps and one oneof), so the
wire format is a few dozen lines that mypy can check end to end, with no dynamic classes and
no dependence on the protobuf runtime's API across major versions. Tests check the bytes
against the protobuf runtime itself.

Encoding emits every scalar of the event message, also when it equals the proto3 default: that
is what `optional` fields do, and decoders of non-optional fields read it the same way.
Values travel as BSON documents `{"v": value}`; an unset value is an absent field.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any, Literal

import bson
from bson.codec_options import CodecOptions

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


class DecodeError(ValueError):
    """The bytes are not a `SimpleEvent` this codec can read."""


_VARINT = 0
_FIXED64 = 1
_LENGTH = 2
_FIXED32 = 5

_SIMPLE_TRIGGER_ID = 2
_PARENT_TRIGGER_ID = 3
_REALM = 4
_DEVICE_ID = 5
_TIMESTAMP = 18

_BSON_OPTIONS: CodecOptions[dict[str, object]] = CodecOptions(tz_aware=True, tzinfo=UTC)

# How each field of an event message is written: its number and wire representation.
_Kind = Literal["string", "int", "bson", "string_map"]
_Schema = tuple[tuple[int, str, _Kind], ...]
_INTERFACE_PATH: _Schema = ((1, "interface", "string"), (2, "path", "string"))
_VALUE: _Schema = (*_INTERFACE_PATH, (3, "value", "bson"))
_CHANGE: _Schema = (*_INTERFACE_PATH, (3, "old_value", "bson"), (4, "new_value", "bson"))

# Event type → (field number in SimpleEvent's oneof, message schema). The introspection
# message has a map of messages; it is handled apart.
_EVENTS: dict[type[Event], tuple[int, _Schema]] = {
    DeviceConnected: (6, ((1, "device_ip_address", "string"),)),
    DeviceDisconnected: (7, ()),
    IncomingData: (8, _VALUE),
    ValueChange: (9, _CHANGE),
    ValueChangeApplied: (10, _CHANGE),
    PathCreated: (11, _VALUE),
    PathRemoved: (12, _INTERFACE_PATH),
    ValueStored: (13, _VALUE),
    IncomingIntrospection: (14, ()),
    InterfaceAdded: (
        15,
        ((1, "interface", "string"), (2, "major_version", "int"), (3, "minor_version", "int")),
    ),
    InterfaceRemoved: (16, ((1, "interface", "string"), (2, "major_version", "int"))),
    InterfaceMinorUpdated: (
        17,
        (
            (1, "interface", "string"),
            (2, "major_version", "int"),
            (3, "old_minor_version", "int"),
            (4, "new_minor_version", "int"),
        ),
    ),
    DeviceError: (19, ((1, "error_name", "string"), (2, "metadata", "string_map"))),
    DeviceRegistered: (20, ()),
    DeviceDeletionStarted: (21, ()),
    DeviceDeletionFinished: (22, ()),
}
_DEFAULTS: dict[_Kind, object] = {"string": "", "int": 0, "bson": None, "string_map": None}
_EVENT_BY_FIELD = {number: (cls, schema) for cls, (number, schema) in _EVENTS.items()}


def encode_simple_event(event: SimpleEvent) -> bytes:
    number, schema = _EVENTS[type(event.event)]
    return b"".join(
        (
            _bytes_field(_SIMPLE_TRIGGER_ID, event.simple_trigger_id.bytes),
            _bytes_field(_PARENT_TRIGGER_ID, event.parent_trigger_id.bytes),
            _bytes_field(_REALM, event.realm.encode()),
            _bytes_field(_DEVICE_ID, event.device_id.encode()),
            _bytes_field(number, _encode_event(event.event, schema)),
            _key(_TIMESTAMP, _VARINT) + _varint(event.timestamp_ms),
        )
    )


def decode_simple_event(data: bytes) -> SimpleEvent:
    try:
        return _decode(data)
    except DecodeError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, bson.InvalidBSON) as error:
        raise DecodeError(f"not a SimpleEvent: {error}") from error


def _decode(data: bytes) -> SimpleEvent:
    scalars: dict[int, int | bytes] = {}
    event: Event | None = None
    for number, value in _fields(data):
        if number in _EVENT_BY_FIELD and isinstance(value, bytes):
            event = _decode_event(number, value)
        else:
            scalars[number] = value
    if event is None:
        raise DecodeError("the SimpleEvent carries no event")
    return SimpleEvent(
        realm=_text(scalars[_REALM]),
        device_id=_text(scalars[_DEVICE_ID]),
        timestamp_ms=_signed(scalars.get(_TIMESTAMP, 0)),
        simple_trigger_id=uuid.UUID(bytes=_raw(scalars[_SIMPLE_TRIGGER_ID])),
        parent_trigger_id=uuid.UUID(bytes=_raw(scalars[_PARENT_TRIGGER_ID])),
        event=event,
    )


def _encode_event(event: Event, schema: _Schema) -> bytes:
    if isinstance(event, IncomingIntrospection):
        return _encode_introspection(event)
    parts = []
    for number, name, kind in schema:
        value = getattr(event, name)
        if kind == "string":
            parts.append(_bytes_field(number, value.encode()))
        elif kind == "int":
            parts.append(_key(number, _VARINT) + _varint(value))
        elif kind == "bson":
            if value is not None:
                parts.append(_bytes_field(number, bson.encode({"v": value})))
        else:
            for key, item in value.items():
                entry = _bytes_field(1, key.encode()) + _bytes_field(2, item.encode())
                parts.append(_bytes_field(number, entry))
    return b"".join(parts)


def _encode_introspection(event: IncomingIntrospection) -> bytes:
    # Field 1 is the legacy `name:major:minor;…` string, kept for older consumers;
    # field 2 is the map of InterfaceVersion messages.
    legacy = ";".join(
        f"{name}:{version.major}:{version.minor}" for name, version in event.introspection.items()
    )
    parts = [_bytes_field(1, legacy.encode())]
    for name, version in event.introspection.items():
        message = (
            _key(1, _VARINT) + _varint(version.major) + _key(2, _VARINT) + _varint(version.minor)
        )
        parts.append(_bytes_field(2, _bytes_field(1, name.encode()) + _bytes_field(2, message)))
    return b"".join(parts)


def _decode_event(number: int, data: bytes) -> Event:
    cls, schema = _EVENT_BY_FIELD[number]
    if cls is IncomingIntrospection:
        return _decode_introspection(data)
    by_number = {field_number: (name, kind) for field_number, name, kind in schema}
    values: dict[str, Any] = {name: _DEFAULTS[kind] for _, name, kind in schema}
    maps: dict[str, dict[str, str]] = {name: {} for _, name, kind in schema if kind == "string_map"}
    for field_number, value in _fields(data):
        if field_number not in by_number:
            continue
        name, kind = by_number[field_number]
        if kind == "string":
            values[name] = _text(value)
        elif kind == "int":
            values[name] = _signed(value)
        elif kind == "bson":
            values[name] = _bson_value(_raw(value))
        else:
            entry = dict(_fields(_raw(value)))
            maps[name][_text(entry.get(1, b""))] = _text(entry.get(2, b""))
    values.update(maps)
    return cls(**values)


def _decode_introspection(data: bytes) -> IncomingIntrospection:
    introspection: dict[str, InterfaceVersion] = {}
    for field_number, value in _fields(data):
        if field_number != 2:
            continue
        entry = dict(_fields(_raw(value)))
        version = dict(_fields(_raw(entry.get(2, b""))))
        introspection[_text(entry.get(1, b""))] = InterfaceVersion(
            major=_signed(version.get(1, 0)), minor=_signed(version.get(2, 0))
        )
    return IncomingIntrospection(introspection)


def _bson_value(data: bytes) -> object:
    return _plain(bson.decode(data, codec_options=_BSON_OPTIONS).get("v"))


def _plain(value: object) -> object:
    """BSON int64 values decode as an `int` subclass; canonical values are plain ints."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers are their 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes; fixed-width
    fields (none in these messages) are skipped."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
            yield number, value
        elif wire_type == _LENGTH:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise DecodeError("truncated length-delimited field")
            yield number, data[position : position + length]
            position += length
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def _signed(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise DecodeError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value


def _raw(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError("expected a length-delimited field")
    return value


def _text(value: int | bytes) -> str:
    return _raw(value).decode()
