"""Realms in SQLite; deleting one relies on the schema's ON DELETE CASCADE chains."""

from __future__ import annotations

import sqlite3

import orjson

from astraea.storage.base import AlreadyExists, NotFound, Realm
from astraea.storage.sqlite.connection import Database

_INSERT = """
INSERT INTO realms (
    name, jwt_public_key_pem, replication_class, replication_factor,
    datacenter_replication_factors, device_registration_limit,
    datastream_maximum_storage_retention
) VALUES (
    :name, :jwt_public_key_pem, :replication_class, :replication_factor,
    :datacenter_replication_factors, :device_registration_limit,
    :datastream_maximum_storage_retention
) ON CONFLICT (name) DO NOTHING
"""

_UPDATE = """
UPDATE realms SET
    jwt_public_key_pem = :jwt_public_key_pem,
    replication_class = :replication_class,
    replication_factor = :replication_factor,
    datacenter_replication_factors = :datacenter_replication_factors,
    device_registration_limit = :device_registration_limit,
    datastream_maximum_storage_retention = :datastream_maximum_storage_retention
WHERE name = :name
"""


class SqliteRealmRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, realm: Realm) -> None:
        if not await self._database.execute(_INSERT, _params(realm)):
            raise AlreadyExists(f"realm {realm.name!r} already exists")

    async def get(self, name: str) -> Realm | None:
        row = await self._database.fetch_one("SELECT * FROM realms WHERE name = ?", (name,))
        return None if row is None else _realm(row)

    async def list_names(self) -> list[str]:
        rows = await self._database.fetch_all("SELECT name FROM realms ORDER BY name")
        return [row["name"] for row in rows]

    async def update(self, realm: Realm) -> None:
        if not await self._database.execute(_UPDATE, _params(realm)):
            raise NotFound(f"realm {realm.name!r} does not exist")

    async def delete(self, name: str) -> bool:
        return await self._database.execute("DELETE FROM realms WHERE name = ?", (name,)) > 0


def _params(realm: Realm) -> dict[str, object]:
    factors = realm.datacenter_replication_factors
    return {
        "name": realm.name,
        "jwt_public_key_pem": realm.jwt_public_key_pem,
        "replication_class": realm.replication_class,
        "replication_factor": realm.replication_factor,
        "datacenter_replication_factors": None
        if factors is None
        else orjson.dumps(factors).decode(),
        "device_registration_limit": realm.device_registration_limit,
        "datastream_maximum_storage_retention": realm.datastream_maximum_storage_retention,
    }


def _realm(row: sqlite3.Row) -> Realm:
    factors = row["datacenter_replication_factors"]
    return Realm(
        name=row["name"],
        jwt_public_key_pem=row["jwt_public_key_pem"],
        replication_class=row["replication_class"],
        replication_factor=row["replication_factor"],
        datacenter_replication_factors=None if factors is None else orjson.loads(factors),
        device_registration_limit=row["device_registration_limit"],
        datastream_maximum_storage_retention=row["datastream_maximum_storage_retention"],
    )
