"""Shared arrangement of the AppEngine interface-values tests: interfaces, devices, values
stored through the storage API, and a recording stand-in for the device transport."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.core.interface import Aggregation
from astraea.core.interface_parser import parse_interface
from astraea.platform import Platform
from astraea.storage.base import (
    DatastreamSample,
    PropertyWrite,
    Storage,
    StoredProperty,
    StoredSample,
)

REALM = "test"
BASE = f"/appengine/v1/{REALM}"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEVICE = encode_device_id(bytes(range(16)))
BARE = encode_device_id(bytes(range(16, 32)))  # no introspection
STALE = encode_device_id(bytes(range(32, 48)))  # declares a major that is not installed
ALIAS = "kitchen"

SERVER_PROPS = "org.astraea.test.ServerProps"
DEVICE_PROPS = "org.astraea.test.DeviceProps"
SERVER_STREAM = "org.astraea.test.ServerStream"
DEVICE_STREAM = "org.astraea.test.DeviceStream"
SERVER_OBJECT = "org.astraea.test.ServerObject"
DEVICE_OBJECT = "org.astraea.test.DeviceObject"
ROOT_OBJECT = "org.astraea.test.RootObject"


def _interface(
    name: str, kind: str, owner: str, mappings: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        "interface_name": name,
        "version_major": 1,
        "version_minor": 0,
        "type": kind,
        "ownership": owner,
        "mappings": mappings,
        **extra,
    }


INTERFACES = [
    _interface(
        SERVER_PROPS,
        "properties",
        "server",
        [
            {"endpoint": "/rooms/%{room}/temp", "type": "double", "allow_unset": True},
            {"endpoint": "/rooms/%{room}/name", "type": "string"},
            {"endpoint": "/big", "type": "longinteger", "allow_unset": True},
            {"endpoint": "/blob", "type": "binaryblob"},
            {"endpoint": "/when", "type": "datetime"},
            {"endpoint": "/list", "type": "integerarray"},
            {"endpoint": "/count", "type": "integer"},
            {"endpoint": "/text", "type": "string"},
        ],
    ),
    _interface(
        DEVICE_PROPS,
        "properties",
        "device",
        [
            {"endpoint": "/%{sensor}/enabled", "type": "boolean", "allow_unset": True},
            {"endpoint": "/%{sensor}/big", "type": "longinteger"},
            {"endpoint": "/config/when", "type": "datetime"},
            {"endpoint": "/config/blob", "type": "binaryblob"},
        ],
    ),
    _interface(
        SERVER_STREAM,
        "datastream",
        "server",
        [
            {"endpoint": "/unreliable", "type": "double"},
            {"endpoint": "/guaranteed", "type": "integer", "reliability": "guaranteed"},
            {"endpoint": "/unique", "type": "string", "reliability": "unique"},
            {
                "endpoint": "/ttl",
                "type": "double",
                "database_retention_policy": "use_ttl",
                "database_retention_ttl": 3600,
            },
            {"endpoint": "/when", "type": "datetime"},
            {"endpoint": "/levels/%{group}", "type": "double"},
        ],
    ),
    _interface(
        DEVICE_STREAM,
        "datastream",
        "device",
        [
            {"endpoint": "/sensors/%{sensor}/value", "type": "double"},
            {"endpoint": "/sensors/%{sensor}/label", "type": "string"},
            {"endpoint": "/big", "type": "longinteger"},
            {"endpoint": "/when", "type": "datetime"},
            {"endpoint": "/blob", "type": "binaryblob"},
        ],
    ),
    _interface(
        SERVER_OBJECT,
        "datastream",
        "server",
        [
            {"endpoint": "/%{room}/temp", "type": "double", "required": True},
            {"endpoint": "/%{room}/hum", "type": "double"},
            {"endpoint": "/%{room}/count", "type": "longinteger"},
        ],
        aggregation="object",
    ),
    _interface(
        DEVICE_OBJECT,
        "datastream",
        "device",
        [
            {"endpoint": "/%{room}/temp", "type": "double", "explicit_timestamp": True},
            {"endpoint": "/%{room}/hum", "type": "double", "explicit_timestamp": True},
            {"endpoint": "/%{room}/label", "type": "string", "explicit_timestamp": True},
        ],
        aggregation="object",
    ),
    _interface(
        ROOT_OBJECT,
        "datastream",
        "device",
        [{"endpoint": "/a", "type": "double"}, {"endpoint": "/b", "type": "longinteger"}],
        aggregation="object",
    ),
]


@dataclass
class RecordingCommands:
    """Stands in for the MQTT transport (the devices' side of the port): records publishes
    and answers whether a session took them."""

    delivered: bool = True
    published: list[tuple[str, str, str, bytes, int]] = field(default_factory=list)

    async def publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int, *, node: str | None
    ) -> bool:
        self.published.append((realm, device_id, topic, payload, qos))
        return self.delivered


@dataclass
class Env:
    platform: Platform
    storage: Storage
    commands: RecordingCommands
    headers: dict[str, str]

    async def properties(self, interface: str) -> list[StoredProperty]:
        return await self.storage.values.list_properties(REALM, DEVICE, interface, 1)

    async def samples(
        self, interface: str, path: str, aggregation: Aggregation = Aggregation.INDIVIDUAL
    ) -> list[StoredSample]:
        return await self.storage.values.samples(
            REALM, DEVICE, interface, 1, path, aggregation, now=datetime.now(UTC)
        )

    async def set_property(self, interface: str, path: str, value: object) -> None:
        await self.storage.values.apply(
            [PropertyWrite(REALM, DEVICE, interface, 1, path, value, T0)]
        )

    async def add_samples(
        self,
        interface: str,
        path: str,
        values: list[object],
        *,
        start: datetime = T0,
        aggregation: Aggregation = Aggregation.INDIVIDUAL,
    ) -> None:
        """One sample a second from `start`, received a millisecond after its timestamp."""
        writes = []
        for index, value in enumerate(values):
            stamp = start + timedelta(seconds=index)
            reception = stamp + timedelta(milliseconds=1)
            writes.append(
                DatastreamSample(
                    REALM, DEVICE, interface, 1, path, value, stamp, reception, None, aggregation
                )
            )
        await self.storage.values.apply(writes)


async def arrange(platform: Platform, headers: dict[str, str]) -> Env:
    """Installs the interfaces and registers DEVICE (alias `kitchen`, every interface in its
    introspection), BARE and STALE; device commands go to a recorder."""
    storage = platform.storage
    context = platform.api_context
    assert storage is not None and context is not None
    for document in INTERFACES:
        await storage.interfaces.install(REALM, parse_interface(document))
    devices = storage.devices
    for device_id in (DEVICE, BARE, STALE):
        await devices.register(REALM, device_id, "hash", {}, T0)
    await devices.set_introspection(
        REALM, DEVICE, {doc["interface_name"]: (1, 0) for doc in INTERFACES}
    )
    await devices.set_introspection(REALM, STALE, {SERVER_PROPS: (7, 0)})
    await devices.update_aliases(REALM, DEVICE, {"name": ALIAS})
    commands = RecordingCommands()
    context.commands = commands  # type: ignore[assignment]
    return Env(platform, storage, commands, headers)


def add_to_group(platform: Platform, device_id: str, group: str) -> None:
    """Group membership has no storage API yet, so it is written to the database file."""
    with sqlite3.connect(platform.settings.data_dir / "astraea.db") as connection:
        connection.execute(
            "INSERT INTO group_members (realm, device_id, group_name, insertion_id)"
            " VALUES (?, ?, ?, 1)",
            (REALM, decode_device_id(device_id), group),
        )


def errors(response: httpx.Response) -> Any:
    return response.json()["errors"]
