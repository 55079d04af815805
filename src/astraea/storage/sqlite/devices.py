"""Devices in SQLite: registration, credentials, status, aliases, attributes and traffic.

Ids are canonical strings at the repository interface and 16-byte BLOBs in the tables. The
device list pages in id order and its cursor is the last id of a page read as a 128-bit
big-endian integer: it needs no extra column, survives VACUUM (unlike rowid) and stays valid
whatever is inserted or deleted between two pages. Reads that span several tables run in one
transaction, so a device is never assembled from rows of two different moments.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

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
from astraea.storage.sqlite.connection import Database, Executor, Params, fetch_one

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)  # built once: ingestion converts every sample's times
_ID_SPACE = 1 << 128
# SQLite integers are signed 64-bit; a larger LIMIT would not bind.
_MAX_LIMIT = (1 << 63) - 1

_SELECT_DEVICES = """
SELECT d.*, EXISTS (
    SELECT 1 FROM device_deletions x WHERE x.realm = d.realm AND x.device_id = d.device_id
) AS deletion_in_progress
FROM devices d
"""

_REGISTER = """
INSERT INTO devices (realm, device_id, first_registration, credentials_secret_hash)
VALUES (:realm, :device_id, :now, :secret_hash)
ON CONFLICT (realm, device_id) DO UPDATE SET
    credentials_secret_hash = excluded.credentials_secret_hash,
    first_registration = coalesce(first_registration, excluded.first_registration)
"""

_INTROSPECT = """
INSERT INTO device_interfaces (realm, device_id, interface_name, major, minor, in_introspection)
VALUES (?, ?, ?, ?, ?, 1)
ON CONFLICT (realm, device_id, interface_name, major) DO UPDATE SET
    minor = excluded.minor, in_introspection = 1
"""

_RECORD_CREDENTIALS = """
UPDATE devices SET
    cert_serial = ?, cert_aki = ?, last_credentials_request_ip = ?,
    first_credentials_request = coalesce(first_credentials_request, ?)
WHERE realm = ? AND device_id = ?
"""

_SET_ATTRIBUTE = """
INSERT INTO device_attributes (realm, device_id, key, value) VALUES (?, ?, ?, ?)
ON CONFLICT (realm, device_id, key) DO UPDATE SET value = excluded.value
"""

_ADD_TOTALS = """
UPDATE devices SET
    total_received_msgs = total_received_msgs + ?,
    total_received_bytes = total_received_bytes + ?
WHERE realm = ? AND device_id = ?
"""

_ADD_INTERFACE_TRAFFIC = """
UPDATE device_interfaces SET
    exchanged_msgs = exchanged_msgs + ?, exchanged_bytes = exchanged_bytes + ?
WHERE realm = ? AND device_id = ? AND interface_name = ? AND major = ?
"""


class SqliteDeviceRepository:
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
        async with self._database.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT credentials_secret_hash, first_credentials_request FROM devices"
                " WHERE realm = ? AND device_id = ?",
                (realm, raw),
            )
            if row is not None and row["first_credentials_request"] is not None:
                raise AlreadyRegistered(f"device {device_id} already requested credentials")
            if row is None or row["credentials_secret_hash"] is None:
                await _check_registration_limit(tx, realm)
            await tx.execute(
                _REGISTER,
                {"realm": realm, "device_id": raw, "now": _micros(now), "secret_hash": secret_hash},
            )
            await _replace_introspection(tx, realm, raw, introspection)

    async def unregister(self, realm: str, device_id: str) -> bool:
        changed = await self._database.execute(
            "UPDATE devices SET credentials_secret_hash = NULL, first_credentials_request = NULL"
            " WHERE realm = ? AND device_id = ?",
            (realm, decode_device_id(device_id)),
        )
        return changed > 0

    async def get(self, realm: str, device_id: str) -> Device | None:
        """One trip to the database thread: every connecting device is read twice (to
        authenticate it, then by ingestion)."""
        key = (realm, decode_device_id(device_id))

        def read(connection: sqlite3.Connection) -> list[Device]:
            rows = connection.execute(
                _SELECT_DEVICES + "WHERE d.realm = ? AND d.device_id = ?", key
            ).fetchall()
            return _assemble(connection, realm, rows)

        devices = await self._database.run(read)
        return devices[0] if devices else None

    async def find_by_alias(self, realm: str, alias: str) -> str | None:
        row = await self._database.fetch_one(
            "SELECT device_id FROM device_aliases WHERE realm = ? AND alias = ?", (realm, alias)
        )
        return None if row is None else encode_device_id(row["device_id"])

    async def list_page(self, realm: str, limit: int, from_token: int | None) -> DevicePage:
        """Devices after the one whose token is `from_token`; `next_token` is set whenever the
        page is full (Astarte's rule, so a full last page links to an empty one)."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        start = 0 if from_token is None or from_token < 0 else from_token + 1
        if start >= _ID_SPACE:
            return DevicePage(devices=[], next_token=None)
        params = (realm, start.to_bytes(16, "big"), min(limit, _MAX_LIMIT))

        def read(connection: sqlite3.Connection) -> tuple[list[sqlite3.Row], list[Device]]:
            rows = connection.execute(
                _SELECT_DEVICES + "WHERE d.realm = ? AND d.device_id >= ?"
                " ORDER BY d.device_id LIMIT ?",
                params,
            ).fetchall()
            return rows, _assemble(connection, realm, rows)

        rows, devices = await self._database.run(read)
        next_token = int.from_bytes(rows[-1]["device_id"], "big") if len(rows) == limit else None
        return DevicePage(devices=devices, next_token=next_token)

    async def count(self, realm: str) -> tuple[int, int]:
        row = await self._database.fetch_one(
            "SELECT count(*), coalesce(sum(connected), 0) FROM devices WHERE realm = ?", (realm,)
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
            (serial, aki, ip, _micros(now), realm, decode_device_id(device_id)),
        )

    async def set_credentials_inhibited(self, realm: str, device_id: str, value: bool) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET credentials_inhibited = ? WHERE realm = ? AND device_id = ?",
            (int(value), realm, decode_device_id(device_id)),
        )

    async def update_aliases(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        """Every changed tag is removed before any is set, so a patch may swap aliases
        between tags; an alias still held by any tag (of any device) afterwards is taken."""
        raw = decode_device_id(device_id)
        async with self._database.transaction() as tx:
            await _ensure_device(tx, realm, raw, device_id)
            for tag, alias in changes.items():
                removed = await tx.execute(
                    "DELETE FROM device_aliases WHERE realm = ? AND device_id = ? AND tag = ?",
                    (realm, raw, tag),
                )
                if alias is None and not removed:
                    raise NotFound(f"alias tag {tag!r} not found")
            for tag, alias in changes.items():
                if alias is None:
                    continue
                taken = await tx.fetch_one(
                    "SELECT 1 FROM device_aliases WHERE realm = ? AND alias = ?", (realm, alias)
                )
                if taken is not None:
                    raise AlreadyExists(f"alias {alias!r} is already in use")
                await tx.execute(
                    "INSERT INTO device_aliases (realm, device_id, tag, alias) VALUES (?, ?, ?, ?)",
                    (realm, raw, tag, alias),
                )

    async def update_attributes(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        raw = decode_device_id(device_id)
        async with self._database.transaction() as tx:
            await _ensure_device(tx, realm, raw, device_id)
            for key, value in changes.items():
                if value is not None:
                    await tx.execute(_SET_ATTRIBUTE, (realm, raw, key, value))
                elif not await tx.execute(
                    "DELETE FROM device_attributes WHERE realm = ? AND device_id = ? AND key = ?",
                    (realm, raw, key),
                ):
                    raise NotFound(f"attribute key {key!r} not found")

    async def set_introspection(
        self, realm: str, device_id: str, introspection: dict[str, tuple[int, int]]
    ) -> None:
        raw = decode_device_id(device_id)
        async with self._database.transaction() as tx:
            await _ensure_device(tx, realm, raw, device_id)
            await _replace_introspection(tx, realm, raw, introspection)

    async def mark_connected(
        self, realm: str, device_id: str, ip: str, now: datetime, node: str = ""
    ) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET connected = 1, last_connection = ?, last_seen_ip = ?,"
            " connection_node = ? WHERE realm = ? AND device_id = ?",
            (_micros(now), ip, node, realm, decode_device_id(device_id)),
        )

    async def mark_disconnected(
        self, realm: str, device_id: str, now: datetime, node: str | None = None
    ) -> bool:
        key = (realm, decode_device_id(device_id))

        def update(connection: sqlite3.Connection) -> bool | None:
            changed = connection.execute(
                "UPDATE devices SET connected = 0, last_disconnection = ?"
                " WHERE realm = ? AND device_id = ? AND connected = 1"
                " AND (? IS NULL OR connection_node = ?)",
                (_micros(now), *key, node, node),
            ).rowcount
            if changed:
                return True
            exists = fetch_one(
                connection, "SELECT 1 FROM devices WHERE realm = ? AND device_id = ?", key
            )
            return None if exists is None else False

        changed = await self._database.run(update)
        if changed is None:
            raise NotFound(f"device {device_id} not found")
        return changed

    async def connected_through(self, node: str) -> list[tuple[str, str]]:
        rows = await self._database.fetch_all(
            "SELECT realm, device_id FROM devices WHERE connected = 1 AND connection_node = ?",
            (node,),
        )
        return [(row["realm"], encode_device_id(row["device_id"])) for row in rows]

    async def set_capabilities(
        self, realm: str, device_id: str, capabilities: dict[str, str]
    ) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET capabilities = ? WHERE realm = ? AND device_id = ?",
            (json.dumps(capabilities, sort_keys=True), realm, decode_device_id(device_id)),
        )

    async def set_pending_empty_cache(self, realm: str, device_id: str, value: bool) -> None:
        await self._update_device(
            device_id,
            "UPDATE devices SET pending_empty_cache = ? WHERE realm = ? AND device_id = ?",
            (int(value), realm, decode_device_id(device_id)),
        )

    async def add_traffic(self, updates: list[TrafficUpdate]) -> None:
        """Sums the batch per device and per interface first, so a burst from one device costs
        one row per counter, and writes every row in one trip to the database thread (one
        awaited statement per device made flushing 1 000 devices take ~0.2 s); updates for
        devices gone meanwhile change nothing."""
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
        device_rows = [(msgs, size, *key) for key, (msgs, size) in totals.items()]
        interface_rows = [(msgs, size, *key) for key, (msgs, size) in per_interface.items()]

        def write(connection: sqlite3.Connection) -> None:
            connection.executemany(_ADD_TOTALS, device_rows)
            connection.executemany(_ADD_INTERFACE_TRAFFIC, interface_rows)

        await self._database.run(write)

    async def _update_device(self, device_id: str, sql: str, params: Params) -> None:
        if not await self._database.execute(sql, params):
            raise NotFound(f"device {device_id} not found")


async def _check_registration_limit(tx: Executor, realm: str) -> None:
    """Raises unless one more registered device (one holding a secret) fits in the realm."""
    row = await tx.fetch_one(
        "SELECT device_registration_limit FROM realms WHERE name = ?", (realm,)
    )
    if row is None:
        raise NotFound(f"realm {realm!r} does not exist")
    limit = row["device_registration_limit"]
    if limit is None:
        return
    counted = await tx.fetch_one(
        "SELECT count(*) FROM devices WHERE realm = ? AND credentials_secret_hash IS NOT NULL",
        (realm,),
    )
    if counted is not None and counted[0] >= limit:
        raise RegistrationLimitReached(f"realm {realm!r} reached its limit of {limit} devices")


async def _ensure_device(tx: Executor, realm: str, raw: bytes, device_id: str) -> None:
    found = await tx.fetch_one(
        "SELECT 1 FROM devices WHERE realm = ? AND device_id = ?", (realm, raw)
    )
    if found is None:
        raise NotFound(f"device {device_id} not found")


async def _replace_introspection(
    tx: Executor, realm: str, raw: bytes, introspection: dict[str, tuple[int, int]]
) -> None:
    """Interfaces leaving the introspection stay as previous ones with their counters, which
    are keyed by (name, major) and so resume if that major comes back."""
    await tx.execute(
        "UPDATE device_interfaces SET in_introspection = 0"
        " WHERE realm = ? AND device_id = ? AND in_introspection = 1",
        (realm, raw),
    )
    for name, (major, minor) in introspection.items():
        await tx.execute(_INTROSPECT, (realm, raw, name, major, minor))


def _assemble(
    connection: sqlite3.Connection, realm: str, rows: Sequence[sqlite3.Row]
) -> list[Device]:
    """Devices of `rows` (consecutive in id order) with their interfaces, aliases, attributes
    and groups, read with one query per table over the rows' id range."""
    if not rows:
        return []
    devices = {row["device_id"]: _device(realm, row) for row in rows}
    span = (realm, rows[0]["device_id"], rows[-1]["device_id"])
    in_span = "WHERE realm = ? AND device_id BETWEEN ? AND ?"
    for row in connection.execute(
        "SELECT device_id, interface_name, major, minor, in_introspection, exchanged_msgs,"
        f" exchanged_bytes FROM device_interfaces {in_span} ORDER BY interface_name, major",
        span,
    ):
        device = devices[row["device_id"]]
        use = InterfaceUse(
            name=row["interface_name"],
            major=row["major"],
            minor=row["minor"],
            exchanged_msgs=row["exchanged_msgs"],
            exchanged_bytes=row["exchanged_bytes"],
        )
        if row["in_introspection"]:
            device.introspection[use.name] = use
        else:
            device.previous_interfaces.append(use)
    for row in connection.execute(
        f"SELECT device_id, tag, alias FROM device_aliases {in_span} ORDER BY tag", span
    ):
        devices[row["device_id"]].aliases[row["tag"]] = row["alias"]
    for row in connection.execute(
        f"SELECT device_id, key, value FROM device_attributes {in_span} ORDER BY key", span
    ):
        devices[row["device_id"]].attributes[row["key"]] = row["value"]
    for row in connection.execute(
        f"SELECT device_id, group_name FROM group_members {in_span} ORDER BY group_name", span
    ):
        devices[row["device_id"]].groups.append(row["group_name"])
    return list(devices.values())


def _device(realm: str, row: sqlite3.Row) -> Device:
    return Device(
        realm=realm,
        device_id=encode_device_id(row["device_id"]),
        credentials_secret_hash=row["credentials_secret_hash"],
        credentials_inhibited=bool(row["credentials_inhibited"]),
        first_registration=_moment(row["first_registration"]),
        first_credentials_request=_moment(row["first_credentials_request"]),
        last_credentials_request_ip=row["last_credentials_request_ip"],
        cert_serial=row["cert_serial"],
        cert_aki=row["cert_aki"],
        connected=bool(row["connected"]),
        last_connection=_moment(row["last_connection"]),
        last_disconnection=_moment(row["last_disconnection"]),
        last_seen_ip=row["last_seen_ip"],
        total_received_msgs=row["total_received_msgs"],
        total_received_bytes=row["total_received_bytes"],
        pending_empty_cache=bool(row["pending_empty_cache"]),
        deletion_in_progress=bool(row["deletion_in_progress"]),
        connection_node=row["connection_node"],
        capabilities=json.loads(row["capabilities"]) if row["capabilities"] else {},
    )


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (the schema's unit for instants)."""
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + micros * _MICROSECOND
