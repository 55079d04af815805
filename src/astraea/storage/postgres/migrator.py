"""Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order, once each.

`schema_version` records every applied migration. Opening applies the missing ones in one
transaction that first takes a transaction-level advisory lock keyed by the schema name, so
processes starting at once wait for each other: the first migrates, the others then find
nothing left to do (CREATE SCHEMA / CREATE TABLE IF NOT EXISTS are not safe against each
other without it). A failing migration rolls back whole, schema creation included, and the
lock goes with the transaction whatever happens. A database whose version is newer than the
newest migration shipped here is refused rather than used with a schema this code does not
know.

Scripts may hold several statements (they run through the simple query protocol) but no
transaction control: they run inside the migration transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from astraea.storage.base import SchemaTooNew
from astraea.storage.postgres.connection import Database
from astraea.storage.postgres.url import quote_identifier

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")
# The first key of the advisory lock: Astraea's migrations (the second is the schema's hash).
MIGRATION_LOCK = 0x61737472  # "astr"

_CREATE_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


def shipped_migrations() -> list[Migration]:
    """The migrations packaged with this code, numbered 1..N without gaps."""
    migrations = []
    for entry in (files("astraea.storage.postgres") / "migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            version, name = match.groups()
            migrations.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"PostgreSQL migrations must be numbered 1..N, found {versions}")
    return migrations


async def migrate(database: Database, migrations: Sequence[Migration]) -> int:
    """Applies the migrations newer than the schema's version; returns the new version."""
    newest = migrations[-1].version if migrations else 0
    schema = database.target.schema
    async with database.transaction() as connection:
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", MIGRATION_LOCK, schema or ""
        )
        if schema is not None:
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        await connection.execute(_CREATE_SCHEMA_VERSION)
        current = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if current > newest:
            raise SchemaTooNew(
                f"the database schema is at version {current} but this Astraea knows versions "
                f"up to {newest}: upgrade Astraea to use this database"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            await connection.execute(migration.script)
            await connection.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                time.time_ns() // 1000,
            )
    return newest
