"""Installed interfaces in SQLite: the canonical JSON document plus the columns queries need."""

from __future__ import annotations

import orjson

from astraea.core.interface import Interface, interface_from_json
from astraea.storage.base import AlreadyExists, NotFound
from astraea.storage.sqlite.connection import Database

_INSERT = """
INSERT INTO interfaces (
    realm, name, major, minor, collision_key, type, ownership, aggregation, document
) VALUES (
    :realm, :name, :major, :minor, :collision_key, :type, :ownership, :aggregation, :document
) ON CONFLICT (realm, name, major) DO NOTHING
"""

_UPDATE = """
UPDATE interfaces SET
    minor = :minor, type = :type, ownership = :ownership, aggregation = :aggregation,
    document = :document
WHERE realm = :realm AND name = :name AND major = :major
"""


class SqliteInterfaceRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, interface: Interface) -> None:
        async with self._database.transaction() as tx:
            if await tx.fetch_one("SELECT 1 FROM realms WHERE name = ?", (realm,)) is None:
                raise NotFound(f"realm {realm!r} does not exist")
            if not await tx.execute(_INSERT, _params(realm, interface)):
                raise AlreadyExists(
                    f"interface {interface.name} v{interface.major} is already installed"
                )

    async def replace(self, realm: str, interface: Interface) -> None:
        if not await self._database.execute(_UPDATE, _params(realm, interface)):
            raise NotFound(f"interface {interface.name} v{interface.major} is not installed")

    async def get(self, realm: str, name: str, major: int) -> Interface | None:
        row = await self._database.fetch_one(
            "SELECT document FROM interfaces WHERE realm = ? AND name = ? AND major = ?",
            (realm, name, major),
        )
        return None if row is None else _interface(row["document"])

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch_all(
            "SELECT DISTINCT name FROM interfaces WHERE realm = ? ORDER BY name", (realm,)
        )
        return [row["name"] for row in rows]

    async def list_majors(self, realm: str, name: str) -> list[int]:
        rows = await self._database.fetch_all(
            "SELECT major FROM interfaces WHERE realm = ? AND name = ? ORDER BY major",
            (realm, name),
        )
        return [row["major"] for row in rows]

    async def list_all(self, realm: str) -> list[Interface]:
        rows = await self._database.fetch_all(
            "SELECT document FROM interfaces WHERE realm = ? ORDER BY name, major", (realm,)
        )
        return [_interface(row["document"]) for row in rows]

    async def find_name_collision(self, realm: str, name: str) -> str | None:
        row = await self._database.fetch_one(
            "SELECT name FROM interfaces WHERE realm = ? AND collision_key = ? AND name <> ?"
            " ORDER BY name LIMIT 1",
            (realm, _collision_key(name), name),
        )
        return None if row is None else str(row["name"])

    async def delete(self, realm: str, name: str, major: int) -> bool:
        deleted = await self._database.execute(
            "DELETE FROM interfaces WHERE realm = ? AND name = ? AND major = ?",
            (realm, name, major),
        )
        return deleted > 0

    async def is_used_by_devices(self, realm: str, name: str, major: int) -> bool:
        row = await self._database.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM device_interfaces WHERE realm = ?"
            " AND interface_name = ? AND major = ? AND in_introspection = 1)",
            (realm, name, major),
        )
        return row is not None and bool(row[0])


def _collision_key(name: str) -> str:
    """Names Astarte considers the same: they differ only in letter case or hyphens."""
    return name.lower().replace("-", "")


def _params(realm: str, interface: Interface) -> dict[str, object]:
    return {
        "realm": realm,
        "name": interface.name,
        "major": interface.major,
        "minor": interface.minor,
        "collision_key": _collision_key(interface.name),
        "type": interface.type.value,
        "ownership": interface.ownership.value,
        "aggregation": interface.aggregation.value,
        "document": orjson.dumps(interface.to_json()).decode(),
    }


def _interface(document: str) -> Interface:
    return interface_from_json(orjson.loads(document))
