"""Device interface values in SQLite: properties, datastream samples and their path registry.

`apply` is the ingestion hot path: a whole batch is one transaction and one call to the
database thread, where samples go in with one `executemany` per table (plus one for the path
registry). A prepared single-row INSERT run many times measured faster than multi-row INSERTs,
whose text changes with the batch size and so is parsed again whenever it misses the
statement cache. Samples and properties live in different tables, so inserting the
samples after the property writes keeps the batch's meaning; property writes run in order,
each reading the value it replaces so callers learn what changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any, cast

import bson
from bson.codec_options import CodecOptions

from astraea.core.device_id import decode_device_id
from astraea.core.interface import Aggregation
from astraea.storage.base import (
    DatastreamSample,
    DeliveriesFor,
    PropertyChange,
    PropertyPurge,
    PropertyWrite,
    QueuedDelivery,
    StoredProperty,
    StoredSample,
    ValueWrite,
)
from astraea.storage.sqlite.connection import Database, fetch_one
from astraea.storage.sqlite.delivery_queue import store_deliveries
from astraea.storage.sqlite.devices import _micros, _moment

_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)
_TABLES = {
    Aggregation.INDIVIDUAL: "individual_datastreams",
    Aggregation.OBJECT: "object_datastreams",
}
_NO_CHANGES: tuple[PropertyChange, ...] = ()
_INTERFACE = "realm = ? AND device_id = ? AND interface_name = ? AND major = ?"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"

_UPSERT_PROPERTY = """
INSERT INTO individual_properties
    (realm, device_id, interface_name, major, path, value, reception_timestamp)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (realm, device_id, interface_name, major, path) DO UPDATE SET
    value = excluded.value, reception_timestamp = excluded.reception_timestamp
"""

_INSERT_SAMPLES = {
    aggregation: f"""
INSERT INTO {table} (
    realm, device_id, interface_name, major, path, value_timestamp, reception_timestamp,
    value, expires_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
    for aggregation, table in _TABLES.items()
}

# A path lives as long as its longest-lived sample; NULL (forever) wins.
_UPSERT_PATH = """
INSERT INTO datastream_paths
    (realm, device_id, interface_name, major, path, reception_timestamp, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (realm, device_id, interface_name, major, path) DO UPDATE SET
    reception_timestamp = max(reception_timestamp, excluded.reception_timestamp),
    expires_at = CASE
        WHEN expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
        ELSE max(expires_at, excluded.expires_at)
    END
"""

_LAST_SAMPLES = f"""
SELECT p.path, s.value, s.value_timestamp, s.reception_timestamp
FROM datastream_paths p JOIN {{table}} s
    ON s.realm = p.realm AND s.device_id = p.device_id AND s.interface_name = p.interface_name
    AND s.major = p.major AND s.path = p.path
WHERE p.realm = ? AND p.device_id = ? AND p.interface_name = ? AND p.major = ?
    AND (s.value_timestamp, s.reception_timestamp) = (
        SELECT value_timestamp, reception_timestamp FROM {{table}}
        WHERE {_INTERFACE} AND path = p.path AND {_LIVE}
        ORDER BY value_timestamp DESC, reception_timestamp DESC LIMIT 1
    )
ORDER BY p.path
"""

_PathKey = tuple[str, bytes, str, int, str]
_SampleRow = tuple[str, bytes, str, int, str, int, int, bytes, int | None]


class SqliteValueRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def apply(self, writes: Sequence[ValueWrite]) -> list[tuple[PropertyChange, ...]]:
        return await self._database.run(_applier(writes))

    async def apply_and_queue(
        self, writes: Sequence[ValueWrite], deliveries_for: DeliveriesFor
    ) -> tuple[list[tuple[PropertyChange, ...]], list[QueuedDelivery | None]]:
        if not writes:
            deliveries = deliveries_for([])
            if not deliveries:
                return [], []
            return [], await self._database.run(partial(store_deliveries, deliveries))
        apply = _applier(writes)

        def work(
            connection: sqlite3.Connection,
        ) -> tuple[list[tuple[PropertyChange, ...]], list[QueuedDelivery | None]]:
            changes = apply(connection)
            return changes, store_deliveries(deliveries_for(changes), connection)

        return await self._database.run(work)

    async def list_properties(
        self, realm: str, device_id: str, interface_name: str, major: int
    ) -> list[StoredProperty]:
        rows = await self._database.fetch_all(
            "SELECT path, value, reception_timestamp FROM individual_properties"
            f" WHERE {_INTERFACE} ORDER BY path",
            (realm, decode_device_id(device_id), interface_name, major),
        )
        return [StoredProperty(row[0], _decode_value(row[1]), _at(row[2])) for row in rows]

    async def samples(
        self,
        realm: str,
        device_id: str,
        interface_name: str,
        major: int,
        path: str,
        aggregation: Aggregation,
        *,
        now: datetime,
        since: datetime | None = None,
        since_after: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        newest_first: bool | None = None,
    ) -> list[StoredSample]:
        sql = (
            f"SELECT value, value_timestamp, reception_timestamp FROM {_TABLES[aggregation]}"
            f" WHERE {_INTERFACE} AND path = ? AND {_LIVE}"
        )
        params: list[object] = [
            realm,
            decode_device_id(device_id),
            interface_name,
            major,
            path,
            _micros(now),
        ]
        for bound, condition in ((since, ">="), (since_after, ">"), (to, "<")):
            if bound is not None:
                sql += f" AND value_timestamp {condition} ?"
                params.append(_micros(bound))
        if newest_first is None:
            newest_first = limit is not None and since is None and since_after is None
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY value_timestamp {order}, reception_timestamp {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        decode = _decode_document if aggregation is Aggregation.OBJECT else _decode_value
        return [
            StoredSample(path, decode(row[0]), _at(row[1]), _at(row[2]))
            for row in await self._database.fetch_all(sql, params)
        ]

    async def last_samples(
        self,
        realm: str,
        device_id: str,
        interface_name: str,
        major: int,
        aggregation: Aggregation,
        *,
        now: datetime,
    ) -> list[StoredSample]:
        key = (realm, decode_device_id(device_id), interface_name, major)
        rows = await self._database.fetch_all(
            _LAST_SAMPLES.format(table=_TABLES[aggregation]),
            (*key, *key, _micros(now)),
        )
        decode = _decode_document if aggregation is Aggregation.OBJECT else _decode_value
        return [StoredSample(row[0], decode(row[1]), _at(row[2]), _at(row[3])) for row in rows]

    async def delete_interface_values(
        self, realm: str, device_id: str, interface_name: str, major: int
    ) -> None:
        key = (realm, decode_device_id(device_id), interface_name, major)
        async with self._database.transaction() as tx:
            for table in ("individual_properties", *_TABLES.values(), "datastream_paths"):
                await tx.execute(f"DELETE FROM {table} WHERE {_INTERFACE}", key)

    async def purge_expired(self, now: datetime) -> int:
        deleted = 0
        async with self._database.transaction() as tx:
            for table in (*_TABLES.values(), "datastream_paths"):
                deleted += await tx.execute(
                    f"DELETE FROM {table} WHERE expires_at <= ?", (_micros(now),)
                )
        return deleted


@lru_cache(maxsize=16_384)
def _raw_id(device_id: str) -> bytes:
    """The id's 16 bytes, remembered for the devices currently sending (every sample needs
    them and decoding costs more than the rest of the row)."""
    return decode_device_id(device_id)


def _applier(
    writes: Sequence[ValueWrite],
) -> Callable[[sqlite3.Connection], list[tuple[PropertyChange, ...]]]:
    """The database-thread work of `apply`: property writes in order, each reading the value
    it replaces, then the samples with one `executemany` per table and one for the paths."""
    samples: dict[Aggregation, list[_SampleRow]] = {kind: [] for kind in _TABLES}
    paths: dict[_PathKey, tuple[int, int | None]] = {}
    others: list[tuple[int, PropertyWrite | PropertyPurge]] = []
    for index, write in enumerate(writes):
        if isinstance(write, DatastreamSample):
            _add_sample(write, samples[write.aggregation], paths)
        else:
            others.append((index, write))

    def work(connection: sqlite3.Connection) -> list[tuple[PropertyChange, ...]]:
        changes = [_NO_CHANGES] * len(writes)
        for index, write in others:
            if isinstance(write, PropertyWrite):
                changes[index] = _write_property(connection, write)
            else:
                changes[index] = _purge_properties(connection, write)
        for aggregation, rows in samples.items():
            if rows:
                connection.executemany(_INSERT_SAMPLES[aggregation], rows)
        if paths:
            connection.executemany(
                _UPSERT_PATH, [(*key, *lifetime) for key, lifetime in paths.items()]
            )
        return changes

    return work


def _add_sample(
    sample: DatastreamSample,
    rows: list[_SampleRow],
    paths: dict[_PathKey, tuple[int, int | None]],
) -> None:
    raw = _raw_id(sample.device_id)
    reception = _micros(sample.reception_timestamp)
    expires = None if sample.expires_at is None else _micros(sample.expires_at)
    document = (
        cast(dict[str, object], sample.value)
        if sample.aggregation is Aggregation.OBJECT
        else {"v": sample.value}
    )
    rows.append(
        (
            sample.realm,
            raw,
            sample.interface_name,
            sample.major,
            sample.path,
            _micros(sample.value_timestamp),
            reception,
            bson.encode(document),
            expires,
        )
    )
    key = (sample.realm, raw, sample.interface_name, sample.major, sample.path)
    known = paths.get(key)
    if known is not None:
        expires = None if known[1] is None or expires is None else max(known[1], expires)
    paths[key] = (reception, expires)


def _write_property(
    connection: sqlite3.Connection, write: PropertyWrite
) -> tuple[PropertyChange, ...]:
    key = (
        write.realm,
        decode_device_id(write.device_id),
        write.interface_name,
        write.major,
        write.path,
    )
    if write.value is None:
        row = fetch_one(
            connection,
            f"DELETE FROM individual_properties WHERE {_INTERFACE} AND path = ? RETURNING value",
            key,
        )
        old = None if row is None else row[0]
        new = None
    else:
        row = fetch_one(
            connection,
            f"SELECT value FROM individual_properties WHERE {_INTERFACE} AND path = ?",
            key,
        )
        old = None if row is None else row[0]
        new = bson.encode({"v": write.value})
        connection.execute(_UPSERT_PROPERTY, (*key, new, _micros(write.reception_timestamp)))
    if old == new:
        return _NO_CHANGES
    return (
        PropertyChange(
            write.interface_name,
            write.major,
            write.path,
            None if old is None else _decode_value(old),
            write.value,
        ),
    )


def _purge_properties(
    connection: sqlite3.Connection, purge: PropertyPurge
) -> tuple[PropertyChange, ...]:
    key = (purge.realm, decode_device_id(purge.device_id), purge.interface_name, purge.major)
    rows = connection.execute(
        f"SELECT path, value FROM individual_properties WHERE {_INTERFACE} ORDER BY path", key
    ).fetchall()
    removed = [row for row in rows if row[0] not in purge.keep]
    connection.executemany(
        f"DELETE FROM individual_properties WHERE {_INTERFACE} AND path = ?",
        [(*key, path) for path, _ in removed],
    )
    return tuple(
        PropertyChange(purge.interface_name, purge.major, path, _decode_value(value), None)
        for path, value in removed
    )


def _decode_document(blob: bytes) -> dict[str, Any]:
    return bson.decode(blob, _CODEC)


def _decode_value(blob: bytes) -> object:
    return _decode_document(blob)["v"]


def _at(micros: int) -> datetime:
    moment = _moment(micros)
    assert moment is not None
    return moment
