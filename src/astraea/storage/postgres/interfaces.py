"""Installed interfaces in PostgreSQL: the canonical JSON document plus the columns queries
need."""

from __future__ import annotations

import asyncpg

from astraea.core.interface import Interface, interface_from_json
from astraea.storage.base import AlreadyExists, NotFound
from astraea.storage.postgres.codec import from_json, to_json
from astraea.storage.postgres.connection import Database

_INSERT = """
INSERT INTO interfaces (
    realm, name, major, minor, collision_key, type, ownership, aggregation, document
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (realm, name, major) DO NOTHING
"""

_UPDATE = """
UPDATE interfaces SET
    minor = $4, collision_key = $5, type = $6, ownership = $7, aggregation = $8, document = $9
WHERE realm = $1 AND name = $2 AND major = $3
"""


class PostgresInterfaceRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, interface: Interface) -> None:
        """One statement: the realm's foreign key tells an unknown realm, and with no realm
        there is no installed interface to conflict with first."""
        try:
            inserted = await self._database.execute(_INSERT, *_params(realm, interface))
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"realm {realm!r} does not exist") from None
        if not inserted:
            raise AlreadyExists(
                f"interface {interface.name} v{interface.major} is already installed"
            )

    async def replace(self, realm: str, interface: Interface) -> None:
        if not await self._database.execute(_UPDATE, *_params(realm, interface)):
            raise NotFound(f"interface {interface.name} v{interface.major} is not installed")

    async def get(self, realm: str, name: str, major: int) -> Interface | None:
        document = await self._database.fetchval(
            "SELECT document FROM interfaces WHERE realm = $1 AND name = $2 AND major = $3",
            realm,
            name,
            major,
        )
        return None if document is None else _interface(document)

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch(
            "SELECT DISTINCT name FROM interfaces WHERE realm = $1 ORDER BY name", realm
        )
        return [row["name"] for row in rows]

    async def list_majors(self, realm: str, name: str) -> list[int]:
        rows = await self._database.fetch(
            "SELECT major FROM interfaces WHERE realm = $1 AND name = $2 ORDER BY major",
            realm,
            name,
        )
        return [row["major"] for row in rows]

    async def list_all(self, realm: str) -> list[Interface]:
        rows = await self._database.fetch(
            "SELECT document FROM interfaces WHERE realm = $1 ORDER BY name, major", realm
        )
        return [_interface(row["document"]) for row in rows]

    async def find_name_collision(self, realm: str, name: str) -> str | None:
        found: str | None = await self._database.fetchval(
            "SELECT name FROM interfaces WHERE realm = $1 AND collision_key = $2 AND name <> $3"
            " ORDER BY name LIMIT 1",
            realm,
            collision_key(name),
            name,
        )
        return found

    async def delete(self, realm: str, name: str, major: int) -> bool:
        deleted = await self._database.execute(
            "DELETE FROM interfaces WHERE realm = $1 AND name = $2 AND major = $3",
            realm,
            name,
            major,
        )
        return deleted > 0

    async def is_used_by_devices(self, realm: str, name: str, major: int) -> bool:
        used: bool = await self._database.fetchval(
            "SELECT EXISTS (SELECT 1 FROM device_interfaces WHERE realm = $1"
            " AND interface_name = $2 AND major = $3 AND in_introspection)",
            realm,
            name,
            major,
        )
        return used


def collision_key(name: str) -> str:
    """Names Astarte considers the same: they differ only in letter case or hyphens."""
    return name.lower().replace("-", "")


def _params(realm: str, interface: Interface) -> tuple[object, ...]:
    return (
        realm,
        interface.name,
        interface.major,
        interface.minor,
        collision_key(interface.name),
        interface.type.value,
        interface.ownership.value,
        interface.aggregation.value,
        to_json(interface.to_json()),
    )


def _interface(document: str) -> Interface:
    return interface_from_json(from_json(document))
