"""Shared helpers of the ingestion tests: interfaces, a settable clock, message builders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import bson

from astraea.ingest import (
    Connected,
    DeviceMessage,
    Disconnected,
    Ingestor,
    Outcome,
)

REALM = "test"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

VALUES = "org.astraea.test.Values"
OBJECTS = "org.astraea.test.Objects"
DEVICE_PROPS = "org.astraea.test.DeviceProps"
SERVER_PROPS = "org.astraea.test.ServerProps"
SERVER_STREAM = "org.astraea.test.ServerStream"
SECRETS = "org.astraea.test.Secrets"

INTERFACES: list[dict[str, Any]] = [
    {
        "interface_name": VALUES,
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [
            {"endpoint": "/%{sensor}/value", "type": "double"},
            {"endpoint": "/%{sensor}/count", "type": "integer"},
            {"endpoint": "/%{sensor}/tags", "type": "stringarray"},
            {"endpoint": "/%{sensor}/label", "type": "string"},
            {"endpoint": "/%{sensor}/stamped", "type": "longinteger", "explicit_timestamp": True},
            {
                "endpoint": "/%{sensor}/short",
                "type": "double",
                "database_retention_policy": "use_ttl",
                "database_retention_ttl": 60,
            },
        ],
    },
    {
        "interface_name": OBJECTS,
        "version_major": 0,
        "version_minor": 1,
        "type": "datastream",
        "ownership": "device",
        "aggregation": "object",
        "mappings": [
            {"endpoint": "/%{room}/temp", "type": "double", "explicit_timestamp": True},
            {
                "endpoint": "/%{room}/hum",
                "type": "integer",
                "explicit_timestamp": True,
                "required": True,
            },
        ],
    },
    {
        "interface_name": DEVICE_PROPS,
        "version_major": 0,
        "version_minor": 1,
        "type": "properties",
        "ownership": "device",
        "mappings": [
            {"endpoint": "/%{name}/enabled", "type": "boolean", "allow_unset": True},
            {"endpoint": "/config/name", "type": "string"},
        ],
    },
    {
        "interface_name": SERVER_PROPS,
        "version_major": 2,
        "version_minor": 0,
        "type": "properties",
        "ownership": "server",
        "mappings": [
            {"endpoint": "/%{name}/level", "type": "double", "allow_unset": True},
            {"endpoint": "/info/label", "type": "string"},
        ],
    },
    {
        "interface_name": SERVER_STREAM,
        "version_major": 0,
        "version_minor": 1,
        "type": "datastream",
        "ownership": "server",
        "mappings": [{"endpoint": "/cmd", "type": "string"}],
    },
    {
        "interface_name": SECRETS,
        "version_major": 0,
        "version_minor": 1,
        "type": "datastream",
        "ownership": "device",
        "mappings": [{"endpoint": "/secret", "type": "string", "encrypted": True}],
    },
]

INTROSPECTION = {
    VALUES: (1, 0),
    OBJECTS: (0, 1),
    DEVICE_PROPS: (0, 1),
    SERVER_PROPS: (2, 0),
    SERVER_STREAM: (0, 1),
    SECRETS: (0, 1),
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


MessageFactory = Callable[..., DeviceMessage]


def bson_value(value: object, timestamp: datetime | None = None) -> bytes:
    document: dict[str, object] = {"v": value}
    if timestamp is not None:
        document["t"] = timestamp
    return bson.encode(document)


def connected(device_id: str, at: datetime, ip: str = "192.0.2.7") -> DeviceMessage:
    return DeviceMessage(REALM, device_id, Connected(ip), at)


def disconnected(device_id: str, at: datetime) -> DeviceMessage:
    return DeviceMessage(REALM, device_id, Disconnected(), at)


async def process_one(ingestor: Ingestor, message: DeviceMessage) -> Outcome:
    (outcome,) = await ingestor.process([message])
    return outcome
