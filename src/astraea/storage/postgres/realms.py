"""Realms in PostgreSQL; deleting one relies on the schema's ON DELETE CASCADE chains."""

from __future__ import annotations

import asyncpg

from astraea.storage.base import AlreadyExists, NotFound, Realm
from astraea.storage.postgres.codec import from_json, to_json
from astraea.storage.postgres.connection import Database

_COLUMNS = """
    name, jwt_public_key_pem, replication_class, replication_factor,
    datacenter_replication_factors, device_registration_limit,
    datastream_maximum_storage_retention
"""

_INSERT = f"""
INSERT INTO realms ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO NOTHING
"""

_UPDATE = """
UPDATE realms SET
    jwt_public_key_pem = $2,
    replication_class = $3,
    replication_factor = $4,
    datacenter_replication_factors = $5,
    device_registration_limit = $6,
    datastream_maximum_storage_retention = $7
WHERE name = $1
"""


class PostgresRealmRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, realm: Realm) -> None:
        """ON CONFLICT makes concurrent creates of one name succeed exactly once."""
        if not await self._database.execute(_INSERT, *_params(realm)):
            raise AlreadyExists(f"realm {realm.name!r} already exists")

    async def get(self, name: str) -> Realm | None:
        row = await self._database.fetchrow(f"SELECT {_COLUMNS} FROM realms WHERE name = $1", name)
        return None if row is None else _realm(row)

    async def list_names(self) -> list[str]:
        rows = await self._database.fetch("SELECT name FROM realms ORDER BY name")
        return [row["name"] for row in rows]

    async def update(self, realm: Realm) -> None:
        if not await self._database.execute(_UPDATE, *_params(realm)):
            raise NotFound(f"realm {realm.name!r} does not exist")

    async def delete(self, name: str) -> bool:
        return await self._database.execute("DELETE FROM realms WHERE name = $1", name) > 0


def _params(realm: Realm) -> tuple[object, ...]:
    factors = realm.datacenter_replication_factors
    return (
        realm.name,
        realm.jwt_public_key_pem,
        realm.replication_class,
        realm.replication_factor,
        None if factors is None else to_json(factors),
        realm.device_registration_limit,
        realm.datastream_maximum_storage_retention,
    )


def _realm(row: asyncpg.Record) -> Realm:
    factors = row["datacenter_replication_factors"]
    return Realm(
        name=row["name"],
        jwt_public_key_pem=row["jwt_public_key_pem"],
        replication_class=row["replication_class"],
        replication_factor=row["replication_factor"],
        datacenter_replication_factors=None if factors is None else from_json(factors),
        device_registration_limit=row["device_registration_limit"],
        datastream_maximum_storage_retention=row["datastream_maximum_storage_retention"],
    )
