"""Writing server-owned interface values (AppEngine PUT/POST) and unsetting server-owned
properties (DELETE).

A write is checked completely, published to the device, and only then stored, so a rejected
write or a guaranteed/unique datastream the device cannot take changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from astraea.api.appengine_values_target import ValueTarget, endpoint_not_found
from astraea.api.errors import ApiError
from astraea.bus.device_commands import DeviceCommands
from astraea.core.endpoints import InvalidPathError
from astraea.core.interface import (
    Aggregation,
    InterfaceType,
    Mapping,
    Ownership,
    Reliability,
)
from astraea.core.payloads import (
    MAX_PAYLOAD_BYTES,
    device_topic,
    encode_object_payload,
    encode_value_payload,
)
from astraea.core.retention import retention_seconds
from astraea.core.values import (
    InvalidValueError,
    MissingRequiredKeyError,
    UnexpectedObjectKeyError,
    ValueTypeError,
    object_value_from_json,
    value_from_json,
)
from astraea.storage.base import DatastreamSample, PropertyWrite, Realm, ValueRepository

PROPERTY_QOS = 2

T = TypeVar("T")


class ReceptionClock:
    """The current time, strictly increasing across calls: two writes on one path within a
    microsecond would otherwise share a storage key."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        self._last = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        return self._last


_CLOCK = ReceptionClock()


class Delivery(enum.StrEnum):
    """What became of a value sent to a device, told in the `Astraea-Delivery` response
    header: Astarte answers 200 either way, so a client cannot otherwise tell a drop."""

    DELIVERED = "delivered"  # a live connection or the device's persistent session took it
    PENDING = "pending"  # a property the device will get at its next connection
    DROPPED = "dropped"  # an unreliable datastream value for a device that cannot take it


DELIVERY_HEADER = "Astraea-Delivery"


class ValueWriter:
    def __init__(self, values: ValueRepository, commands: DeviceCommands, realm: Realm) -> None:
        self._values = values
        self._commands = commands
        self._realm = realm

    async def write(self, target: ValueTarget, raw: object) -> Delivery:
        """Casts `raw` (the request's `data`), publishes it, then stores it."""
        interface = target.interface
        _check_server_owned(target)
        if interface.aggregation is Aggregation.OBJECT:
            members = _object_mappings(target)
            fields = _cast(lambda: object_value_from_json(members, raw))
            payload = encode_object_payload(members, fields)
            value: object = fields
            mapping = next(iter(members.values()))  # objects share their mapping attributes
        else:
            mapping = _writable_mapping(target)
            value = _cast(lambda: value_from_json(mapping.type, raw))
            payload = encode_value_payload(mapping.type, value)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _size_exceeded()
        is_properties = interface.type is InterfaceType.PROPERTIES
        qos = PROPERTY_QOS if is_properties else mapping.reliability.qos
        delivered = await self._publish(target, payload, qos)
        # Properties reach a device without a session when it next asks for them (emptyCache).
        if not (delivered or is_properties or mapping.reliability is Reliability.UNRELIABLE):
            raise ApiError(503, "Cannot push to device")
        now = _CLOCK.now()
        device_id = target.device.device_id
        if is_properties:
            write: PropertyWrite | DatastreamSample = PropertyWrite(
                target.realm, device_id, interface.name, interface.major, target.path, value, now
            )
        else:
            ttl = retention_seconds(mapping, self._realm.datastream_maximum_storage_retention)
            write = DatastreamSample(
                target.realm,
                device_id,
                interface.name,
                interface.major,
                target.path,
                value,
                now,
                now,
                None if ttl is None else now + timedelta(seconds=ttl),
                interface.aggregation,
            )
        await self._values.apply([write])
        if delivered:
            return Delivery.DELIVERED
        return Delivery.PENDING if is_properties else Delivery.DROPPED

    async def unset(self, target: ValueTarget) -> None:
        """Removes a property that allows it and tells the device, connected or not (it
        learns of the unset at its next emptyCache otherwise). Datastream samples cannot be
        unset: 405."""
        _check_server_owned(target)
        interface = target.interface
        if interface.type is InterfaceType.DATASTREAM:
            raise ApiError(405, "Method not allowed")
        mapping = _writable_mapping(target)
        if not mapping.allow_unset:
            raise ApiError(422, "Unset not allowed")
        unset = PropertyWrite(
            target.realm,
            target.device.device_id,
            interface.name,
            interface.major,
            target.path,
            None,
            _CLOCK.now(),
        )
        await self._values.apply([unset])
        await self._publish(target, b"", PROPERTY_QOS)

    async def _publish(self, target: ValueTarget, payload: bytes, qos: int) -> bool:
        device = target.device
        topic = device_topic(target.realm, device.device_id, target.interface.name, target.path)
        node = device.connection_node if device.connected else None
        return await self._commands.publish(
            target.realm, device.device_id, topic, payload, qos, node=node
        )


def _check_server_owned(target: ValueTarget) -> None:
    if target.interface.ownership is not Ownership.SERVER:
        raise ApiError(405, "Cannot write to device owned resource")


def _writable_mapping(target: ValueTarget) -> Mapping:
    """The one mapping owning the path; a partial path is read-only (405)."""
    try:
        mapping = target.tree.resolve(target.path)
        partial = mapping is None and bool(target.tree.resolve_partial(target.path))
    except InvalidPathError:
        raise endpoint_not_found() from None
    if partial:
        raise ApiError(405, "Cannot write to read-only resource")
    if mapping is None:
        raise endpoint_not_found()
    return mapping


def _object_mappings(target: ValueTarget) -> dict[str, Mapping]:
    """The mappings of the object published at the path, which must be their common parent."""
    try:
        members = target.tree.resolve_object(target.path)
    except InvalidPathError:
        members = None
    if members is None:
        raise ApiError(404, "Mapping not found")
    return members


def _cast(convert: Callable[[], T]) -> T:
    try:
        return convert()
    except ValueTypeError as exc:
        raise ApiError(422, "Unexpected value type", expected_type=exc.expected_type) from None
    except UnexpectedObjectKeyError:
        raise ApiError(400, "Unexpected object key") from None
    except MissingRequiredKeyError:
        raise ApiError(422, "Missing required mapping key") from None
    except InvalidValueError:
        raise _size_exceeded() from None


def _size_exceeded() -> ApiError:
    return ApiError(422, "Value size exceeds size limits")
