"""Trigger events: one immutable type per Astarte event, and their JSON and Mustache views.

`SimpleEvent` mirrors Astarte's `SimpleEvent` protobuf (the envelope every action delivers);
its `event` is one of the event types below. Values are canonical Python values (see
`astraea.core.values`), `None` meaning unset; the views render binaries as base64 and
datetimes as ISO 8601, as Astarte's event JSON does.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import ClassVar

from astraea.core.values import datetime_from_millis, format_datetime


@dataclass(frozen=True, slots=True)
class DeviceConnected:
    KIND: ClassVar[str] = "device_connected"
    device_ip_address: str


@dataclass(frozen=True, slots=True)
class DeviceDisconnected:
    KIND: ClassVar[str] = "device_disconnected"


@dataclass(frozen=True, slots=True)
class DeviceRegistered:
    KIND: ClassVar[str] = "device_registered"


@dataclass(frozen=True, slots=True)
class DeviceDeletionStarted:
    KIND: ClassVar[str] = "device_deletion_started"


@dataclass(frozen=True, slots=True)
class DeviceDeletionFinished:
    KIND: ClassVar[str] = "device_deletion_finished"


@dataclass(frozen=True, slots=True)
class DeviceError:
    KIND: ClassVar[str] = "device_error"
    error_name: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _ValueEvent:
    """A value received on a path: the three kinds differ only by when they fire."""

    interface: str
    path: str
    value: object


@dataclass(frozen=True, slots=True)
class IncomingData(_ValueEvent):
    KIND: ClassVar[str] = "incoming_data"


@dataclass(frozen=True, slots=True)
class ValueStored(_ValueEvent):
    KIND: ClassVar[str] = "value_stored"


@dataclass(frozen=True, slots=True)
class PathCreated(_ValueEvent):
    KIND: ClassVar[str] = "path_created"


@dataclass(frozen=True, slots=True)
class PathRemoved:
    KIND: ClassVar[str] = "path_removed"
    interface: str
    path: str


@dataclass(frozen=True, slots=True)
class _ChangeEvent:
    interface: str
    path: str
    old_value: object
    new_value: object


@dataclass(frozen=True, slots=True)
class ValueChange(_ChangeEvent):
    KIND: ClassVar[str] = "value_change"


@dataclass(frozen=True, slots=True)
class ValueChangeApplied(_ChangeEvent):
    KIND: ClassVar[str] = "value_change_applied"


@dataclass(frozen=True, slots=True)
class InterfaceVersion:
    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class IncomingIntrospection:
    KIND: ClassVar[str] = "incoming_introspection"
    introspection: Mapping[str, InterfaceVersion]


@dataclass(frozen=True, slots=True)
class InterfaceAdded:
    KIND: ClassVar[str] = "interface_added"
    interface: str
    major_version: int
    minor_version: int


@dataclass(frozen=True, slots=True)
class InterfaceRemoved:
    KIND: ClassVar[str] = "interface_removed"
    interface: str
    major_version: int


@dataclass(frozen=True, slots=True)
class InterfaceMinorUpdated:
    KIND: ClassVar[str] = "interface_minor_updated"
    interface: str
    major_version: int
    old_minor_version: int
    new_minor_version: int


Event = (
    DeviceConnected
    | DeviceDisconnected
    | DeviceRegistered
    | DeviceDeletionStarted
    | DeviceDeletionFinished
    | DeviceError
    | IncomingData
    | ValueStored
    | PathCreated
    | PathRemoved
    | ValueChange
    | ValueChangeApplied
    | IncomingIntrospection
    | InterfaceAdded
    | InterfaceRemoved
    | InterfaceMinorUpdated
)

EVENT_TYPES: tuple[type[Event], ...] = (
    DeviceConnected,
    DeviceDisconnected,
    DeviceRegistered,
    DeviceDeletionStarted,
    DeviceDeletionFinished,
    DeviceError,
    IncomingData,
    ValueStored,
    PathCreated,
    PathRemoved,
    ValueChange,
    ValueChangeApplied,
    IncomingIntrospection,
    InterfaceAdded,
    InterfaceRemoved,
    InterfaceMinorUpdated,
)


@dataclass(frozen=True, slots=True)
class SimpleEvent:
    """One event for one matched simple trigger, as Astarte's `SimpleEvent` carries it."""

    realm: str
    device_id: str  # canonical encoded id
    timestamp_ms: int  # value timestamp for data events, event time otherwise
    simple_trigger_id: uuid.UUID
    parent_trigger_id: uuid.UUID
    event: Event


def event_type(event: Event) -> str:
    """The name of the event's protobuf field, e.g. `incoming_data_event`: Mustache's
    `event_type` and the `x_astarte_event_type` header."""
    return f"{event.KIND}_event"


def event_to_json(event: Event) -> dict[str, object]:
    """The `event` object of the default HTTP body and of Channels messages."""
    doc: dict[str, object] = {"type": event.KIND}
    if isinstance(event, IncomingIntrospection):
        # Astarte's encoder names this key `introspection` (its docs say `introspection_map`).
        doc["introspection"] = _introspection_json(event.introspection)
        return doc
    for name, value in _event_fields(event).items():
        doc[name] = json_value(value)
    return doc


def default_http_body(event: SimpleEvent, trigger_name: str) -> dict[str, object]:
    """The JSON body of an HTTP action without a template."""
    return {
        "timestamp": format_datetime(datetime_from_millis(event.timestamp_ms)),
        "device_id": event.device_id,
        "event": event_to_json(event.event),
        "trigger_name": trigger_name,
    }


def mustache_context(event: SimpleEvent, trigger_name: str) -> dict[str, object]:
    """The variables of a Mustache template: the basics plus every field of the event,
    named as in the protobuf message except the BSON values, which lose their `bson_` prefix."""
    context: dict[str, object] = {
        "realm": event.realm,
        "device_id": event.device_id,
        "trigger_name": trigger_name,
        "event_type": event_type(event.event),
    }
    inner = event.event
    if isinstance(inner, IncomingIntrospection):
        context["introspection_map"] = _introspection_json(inner.introspection)
        return context
    for name, value in _event_fields(inner).items():
        context[name] = json_value(value)
    return context


def json_value(value: object) -> object:
    """A canonical value as JSON: base64 binaries and ISO 8601 datetimes, also when nested."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    return value


def _event_fields(event: Event) -> dict[str, object]:
    """Field name → value in declaration order (JSON key order follows it)."""
    return {item.name: getattr(event, item.name) for item in fields(event)}


def _introspection_json(introspection: Mapping[str, InterfaceVersion]) -> dict[str, object]:
    return {
        name: {"major": version.major, "minor": version.minor}
        for name, version in introspection.items()
    }
