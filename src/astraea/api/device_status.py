"""AppEngine's DeviceStatus object, rendered with every key Astarte always includes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from astraea.core.values import format_datetime
from astraea.storage.base import Device, InterfaceUse


def device_status_json(device: Device) -> dict[str, Any]:
    return {
        "id": device.device_id,
        "connected": device.connected,
        "introspection": {name: _use(use) for name, use in device.introspection.items()},
        "total_received_msgs": device.total_received_msgs,
        "total_received_bytes": device.total_received_bytes,
        "last_connection": _moment(device.last_connection),
        "last_disconnection": _moment(device.last_disconnection),
        "first_registration": _moment(device.first_registration),
        "first_credentials_request": _moment(device.first_credentials_request),
        "last_seen_ip": device.last_seen_ip,
        "last_credentials_request_ip": device.last_credentials_request_ip,
        "credentials_inhibited": device.credentials_inhibited,
        "aliases": dict(device.aliases),
        "attributes": dict(device.attributes),
        "groups": list(device.groups),
        "previous_interfaces": [
            {"name": use.name, **_use(use)} for use in device.previous_interfaces
        ],
        "deletion_in_progress": device.deletion_in_progress,
    }


def _use(use: InterfaceUse) -> dict[str, int]:
    return {
        "major": use.major,
        "minor": use.minor,
        "exchanged_msgs": use.exchanged_msgs,
        "exchanged_bytes": use.exchanged_bytes,
    }


def _moment(moment: datetime | None) -> str | None:
    return None if moment is None else format_datetime(moment)
