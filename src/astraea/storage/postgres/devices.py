"""Devices in PostgreSQL: registration, credentials, status, aliases, attributes and traffic.

Ids are canonical strings at the repository interface and 16-byte bytea in the tables. The
device list pages in id order (bytea compares bytewise) and its cursor is the last id of a
page read as a 128-bit big-endian integer, as in SQLite. A device is read with one statement,
its interfaces, aliases, attributes and groups as arrays beside its row, so it is never
assembled from rows of two different moments.

Writers that read before they write lock the device row first (FOR NO KEY UPDATE), and
registration locks the realm row as well, so that two registrations cannot both take the last
place under the realm's limit.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.storage.base import (
    AlreadyExists,
    AlreadyRegistered,
    Device,
    DevicePage,
    InterfaceUse,
    NotFound,
    RegistrationLimitReached,
    TrafficUpdate,
)
from astraea.storage.postgres.codec import from_json, micros, optional_moment, to_json
from astraea.storage.postgres.connection import Connection, Database

_ID_SPACE = 1 << 128
# LIMIT takes a bigint.
_MAX_LIMIT = (1 << 63) - 1

_OF_DEVICE = "realm = d.realm AND device_id = d.device_id"

_SELECT_DEVICES = f"""
SELECT d.*,
    EXISTS (SELECT 1 FROM device_deletions WHERE {_OF_DEVICE}) AS deletion_in_progress,
    ARRAY(
        SELECT ROW(interface_name, major, minor, in_introspection, exchanged_msgs,
            exchanged_bytes)
        FROM device_interfaces WHERE {_OF_DEVICE} ORDER BY interface_name, major
    ) AS interfaces,
    ARRAY(SELECT ROW(tag, alias) FROM device_aliases WHERE {_OF_DEVICE} ORDER BY tag) AS aliases,
    ARRAY(
        SELECT ROW(key, value) FROM device_attributes WHERE {_OF_DEVICE} ORDER BY key
    ) AS attributes,
    ARRAY(
        SELECT group_name FROM group_members WHERE {_OF_DEVICE} ORDER BY group_name
    ) AS groups
FROM devices d
"""

_LOCK_DEVICE = """
SELECT credentials_secret_hash, first_credentials_request FROM devices
WHERE realm = $1 AND device_id = $2 FOR NO KEY UPDATE
"""

_REGISTER = """
INSERT INTO devices (realm, device_id, first_registration, credentials_secret_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (realm, device_id) DO UPDATE SET
    credentials_secret_hash = excluded.credentials_secret_hash,
    first_registration = coalesce(devices.first_registration, excluded.first_registration)
"""

_INTROSPECT = """
INSERT INTO device_interfaces (realm, device_id, interface_name, major, minor, in_introspection)
VALUES ($1, $2, $3, $4, $5, true)
ON CONFLICT (realm, device_id, interface_name, major) DO UPDATE SET
    minor = excluded.minor, in_introspection = true
"""

_RECORD_CREDENTIALS = """
UPDATE devices SET
    cert_serial = $3, cert_aki = $4, last_credentials_request_ip = $5,
    first_credentials_request = coalesce(first_credentials_request, $6)
WHERE realm = $1 AND device_id = $2
"""

_REMOVE_ALIASES = """
DELETE FROM device_aliases WHERE realm = $1 AND device_id = $2 AND tag = ANY($3::text[])
RETURNING tag
"""

# Conflicts only on the realm-wide alias index: the tags were removed just before.
_ADD_ALIASES = """
INSERT INTO device_aliases (realm, device_id, tag, alias)
SELECT $1, $2, tag, alias FROM unnest($3::text[], $4::text[]) AS u (tag, alias)
ON CONFLICT DO NOTHING
RETURNING alias
"""

_REMOVE_ATTRIBUTES = """
DELETE FROM device_attributes WHERE realm = $1 AND device_id = $2 AND key = ANY($3::text[])
RETURNING key
"""

_SET_ATTRIBUTES = """
INSERT INTO device_attributes (realm, device_id, key, value)
SELECT $1, $2, key, value FROM unnest($3::text[], $4::text[]) AS u (key, value)
ON CONFLICT (realm, device_id, key) DO UPDATE SET value = excluded.value
"""

_ADD_TOTALS = """
UPDATE devices SET
    total_received_msgs = total_received_msgs + $3,
    total_received_bytes = total_received_bytes + $4
WHERE realm = $1 AND device_id = $2
"""

_ADD_INTERFACE_TRAFFIC = """
UPDATE device_interfaces SET
    exchanged_msgs = exchanged_msgs + $5, exchanged_bytes = exchanged_bytes + $6
WHERE realm = $1 AND device_id = $2 AND interface_name = $3 AND major = $4
"""


class PostgresDeviceRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def register(
        self,
        realm: str,
        device_id: str,
        secret_hash: str,
        introspection: dict[str, tuple[int, int]],
        now: datetime,
    ) -> None:
        raw = decode_device_id(device_id)
        async with self._database.transaction() as connection:
            realm_row = await connection.fetchrow(
                "SELECT device_registration_limit FROM realms WHERE name = $1 FOR NO KEY UPDATE",
                realm,
            )
            if realm_row is None:
                raise NotFound(f"realm {realm!r} does not exist")
            row = await connection.fetchrow(_LOCK_DEVICE, realm, raw)
            if row is not None and row["first_credentials_request"] is not None:
                raise AlreadyRegistered(f"device {device_id} already requested credentials")
            limit = realm_row["device_registration_limit"]
            if (row is None or row["credentials_secret_hash"] is None) and limit is not None:
                await _check_registration_limit(connection, realm, limit)
            await connection.execute(_REGISTER, realm, raw, micros(now), secret_hash)
            await _replace_introspection(connection, realm, raw, introspection)

    async def unregister(self, realm: str, device_id: str) -> bool:
        changed = await self._database.execute(
            "UPDATE devices SET credentials_secret_hash = NULL, first_credentials_request = NULL"
            " WHERE realm = $1 AND device_id = $2",
            realm,
            decode_device_id(device_id),
        )
        return changed > 0

    async def get(self, realm: str, device_id: str) -> Device | None:
        row = await self._database.fetchrow(
            _SELECT_DEVICES + "WHERE d.realm = $1 AND d.device_id = $2",
            realm,
            decode_device_id(device_id),
        )
        return None if row is None else _device(realm, row)

    async def find_by_alias(self, realm: str, alias: str) -> str | None:
        raw = await self._database.fetchval(
            "SELECT device_id FROM device_aliases WHERE realm = $1 AND alias = $2", realm, alias
        )
        return None if raw is None else encode_device_id(raw)

    async def list_page(self, realm: str, limit: int, from_token: int | None) -> DevicePage:
        """Devices after the one whose token is `from_token`; `next_token` is set whenever the
        page is full (Astarte's rule, so a full last page links to an empty one)."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        start = 0 if from_token is None or from_token < 0 else from_token + 1
        if start >= _ID_SPACE:
            return DevicePage(devices=[], next_token=None)
        rows = await self._database.fetch(
            _SELECT_DEVICES + "WHERE d.realm = $1 AND d.device_id >= $2"
            " ORDER BY d.device_id LIMIT $3",
            realm,
            start.to_bytes(16, "big"),
            min(limit, _MAX_LIMIT),
        )
        next_token = int.from_bytes(rows[-1]["device_id"], "big") if len(rows) == limit else None
        return DevicePage(devices=[_device(realm, row) for row in rows], next_token=next_token)

    async def count(self, realm: str) -> tuple[int, int]:
        row = await self._database.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE connected) FROM devices WHERE realm = $1",
            realm,
        )
        assert row is not None
        return int(row[0]), int(row[1])

    async def record_credentials(
        self, realm: str, device_id: str, serial: str, aki: str, ip: str | None, now: datetime
    ) -> None:
        """Stores the newly issued certificate; the previous one is superseded by it."""
        await self._update_device(
            device_id,
            _RECORD_CREDENTIALS,
            realm,
            decode_device_id(device_id),
            serial,
            aki,
            ip,
            micros(now),
        )

    async def set_credentials_inhibited(self, realm: str, device_id: str, value: bool) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET credentials_inhibited = $3 WHERE realm = $1 AND device_id = $2",
            realm,
            decode_device_id(device_id),
            value,
        )

    async def update_aliases(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        """Every changed tag is removed before any is set, so a patch may swap aliases
        between tags; an alias still held by any tag (of any device) afterwards is taken.
        The realm-wide unique index decides, so a concurrent patch cannot take it too."""
        raw = decode_device_id(device_id)
        added = {tag: alias for tag, alias in changes.items() if alias is not None}
        async with self._database.transaction() as connection:
            await _lock_device(connection, realm, raw, device_id)
            removed = await connection.fetch(_REMOVE_ALIASES, realm, raw, list(changes))
            _check_removed(changes, {row["tag"] for row in removed}, "alias tag")
            rows = await connection.fetch(
                _ADD_ALIASES, realm, raw, list(added), list(added.values())
            )
            stored = {row["alias"] for row in rows}
            for alias in added.values():
                if alias not in stored:
                    raise AlreadyExists(f"alias {alias!r} is already in use")

    async def update_attributes(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        raw = decode_device_id(device_id)
        changed = {key: value for key, value in changes.items() if value is not None}
        deleted = [key for key, value in changes.items() if value is None]
        async with self._database.transaction() as connection:
            await _lock_device(connection, realm, raw, device_id)
            removed = await connection.fetch(_REMOVE_ATTRIBUTES, realm, raw, deleted)
            _check_removed(changes, {row["key"] for row in removed}, "attribute key")
            await connection.execute(
                _SET_ATTRIBUTES, realm, raw, list(changed), list(changed.values())
            )

    async def set_introspection(
        self, realm: str, device_id: str, introspection: dict[str, tuple[int, int]]
    ) -> None:
        raw = decode_device_id(device_id)
        async with self._database.transaction() as connection:
            await _lock_device(connection, realm, raw, device_id)
            await _replace_introspection(connection, realm, raw, introspection)

    async def mark_connected(
        self, realm: str, device_id: str, ip: str, now: datetime, node: str = ""
    ) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET connected = true, last_connection = $3, last_seen_ip = $4,"
            " connection_node = $5 WHERE realm = $1 AND device_id = $2",
            realm,
            decode_device_id(device_id),
            micros(now),
            ip,
            node,
        )

    async def mark_disconnected(
        self, realm: str, device_id: str, now: datetime, node: str | None = None
    ) -> bool:
        """One statement: the CTE tells a device that was not connected (through `node`)
        from one that does not exist."""
        row = await self._database.fetchrow(
            "WITH changed AS ("
            " UPDATE devices SET connected = false, last_disconnection = $3"
            " WHERE realm = $1 AND device_id = $2 AND connected"
            " AND ($4::text IS NULL OR connection_node = $4) RETURNING 1)"
            " SELECT EXISTS (SELECT 1 FROM changed) AS changed,"
            " EXISTS (SELECT 1 FROM devices WHERE realm = $1 AND device_id = $2) AS known",
            realm,
            decode_device_id(device_id),
            micros(now),
            node,
        )
        if row is None or not row["known"]:
            raise NotFound(f"device {device_id} not found")
        return bool(row["changed"])

    async def connected_through(self, node: str) -> list[tuple[str, str]]:
        rows = await self._database.fetch(
            "SELECT realm, device_id FROM devices WHERE connected AND connection_node = $1",
            node,
        )
        return [(row["realm"], encode_device_id(row["device_id"])) for row in rows]

    async def set_capabilities(
        self, realm: str, device_id: str, capabilities: dict[str, str]
    ) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET capabilities = $3 WHERE realm = $1 AND device_id = $2",
            realm,
            decode_device_id(device_id),
            to_json(dict(sorted(capabilities.items()))),
        )

    async def set_pending_empty_cache(self, realm: str, device_id: str, value: bool) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET pending_empty_cache = $3 WHERE realm = $1 AND device_id = $2",
            realm,
            decode_device_id(device_id),
            value,
        )

    async def add_traffic(self, updates: list[TrafficUpdate]) -> None:
        """Sums the batch per device and per interface first, so a burst from one device costs
        one row per counter, then writes every row in one transaction, in key order so that
        two flushes touching the same devices lock them in the same order and cannot
        deadlock; updates for devices gone meanwhile change nothing."""
        totals: dict[tuple[str, bytes], tuple[int, int]] = {}
        per_interface: dict[tuple[str, bytes, str, int], tuple[int, int]] = {}
        for update in updates:
            raw = decode_device_id(update.device_id)
            msgs, size = totals.get((update.realm, raw), (0, 0))
            totals[(update.realm, raw)] = (msgs + update.msgs, size + update.bytes)
            if update.interface_name is not None and update.major is not None:
                key = (update.realm, raw, update.interface_name, update.major)
                msgs, size = per_interface.get(key, (0, 0))
                per_interface[key] = (msgs + update.msgs, size + update.bytes)
        if not totals:
            return
        async with self._database.transaction() as connection:
            await connection.executemany(
                _ADD_TOTALS, [(*key, *counts) for key, counts in sorted(totals.items())]
            )
            await connection.executemany(
                _ADD_INTERFACE_TRAFFIC,
                [(*key, *counts) for key, counts in sorted(per_interface.items())],
            )

    async def _update_device(self, device_id: str, sql: str, *args: object) -> None:
        if not await self._database.execute(sql, *args):
            raise NotFound(f"device {device_id} not found")


async def _check_registration_limit(connection: Connection, realm: str, limit: int) -> None:
    """Raises unless one more registered device (one holding a secret) fits in the realm."""
    registered = await connection.fetchval(
        "SELECT count(*) FROM devices WHERE realm = $1 AND credentials_secret_hash IS NOT NULL",
        realm,
    )
    if registered >= limit:
        raise RegistrationLimitReached(f"realm {realm!r} reached its limit of {limit} devices")


async def _lock_device(connection: Connection, realm: str, raw: bytes, device_id: str) -> None:
    if await connection.fetchrow(_LOCK_DEVICE, realm, raw) is None:
        raise NotFound(f"device {device_id} not found")


def _check_removed(changes: dict[str, str | None], removed: set[str], what: str) -> None:
    """Raises NotFound for the first key to delete (value None) that was not there."""
    for key, value in changes.items():
        if value is None and key not in removed:
            raise NotFound(f"{what} {key!r} not found")


async def _replace_introspection(
    connection: Connection, realm: str, raw: bytes, introspection: dict[str, tuple[int, int]]
) -> None:
    """Interfaces leaving the introspection stay as previous ones with their counters, which
    are keyed by (name, major) and so resume if that major comes back."""
    await connection.execute(
        "UPDATE device_interfaces SET in_introspection = false"
        " WHERE realm = $1 AND device_id = $2 AND in_introspection",
        realm,
        raw,
    )
    await connection.executemany(
        _INTROSPECT,
        [(realm, raw, name, major, minor) for name, (major, minor) in introspection.items()],
    )


def _device(realm: str, row: asyncpg.Record) -> Device:
    device = Device(
        realm=realm,
        device_id=encode_device_id(row["device_id"]),
        credentials_secret_hash=row["credentials_secret_hash"],
        credentials_inhibited=row["credentials_inhibited"],
        first_registration=optional_moment(row["first_registration"]),
        first_credentials_request=optional_moment(row["first_credentials_request"]),
        last_credentials_request_ip=row["last_credentials_request_ip"],
        cert_serial=row["cert_serial"],
        cert_aki=row["cert_aki"],
        connected=row["connected"],
        last_connection=optional_moment(row["last_connection"]),
        last_disconnection=optional_moment(row["last_disconnection"]),
        last_seen_ip=row["last_seen_ip"],
        total_received_msgs=row["total_received_msgs"],
        total_received_bytes=row["total_received_bytes"],
        aliases=dict(row["aliases"]),
        attributes=dict(row["attributes"]),
        groups=list(row["groups"]),
        pending_empty_cache=row["pending_empty_cache"],
        deletion_in_progress=row["deletion_in_progress"],
        connection_node=row["connection_node"],
        capabilities=from_json(row["capabilities"]) if row["capabilities"] else {},
    )
    for name, major, minor, in_introspection, msgs, size in row["interfaces"]:
        use = InterfaceUse(name, major, minor, msgs, size)
        if in_introspection:
            device.introspection[name] = use
        else:
            device.previous_interfaces.append(use)
    return device
