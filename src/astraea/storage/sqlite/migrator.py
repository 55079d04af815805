"""Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order, once each.

`schema_version` records every applied migration. Opening a database applies the missing
ones in a single write transaction, so concurrent openers never both migrate and a failing
migration leaves the previous schema untouched. A database whose version is newer than the
newest migration shipped here is refused rather than used with a schema this code does not know.

Scripts hold no transaction control or PRAGMAs (they run inside the migration transaction), and
run with foreign keys on: a migration that rebuilds a table must not drop a parent table (the
drop would cascade to its children).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from astraea.storage.base import SchemaTooNew
from astraea.storage.sqlite.connection import Database

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")
_STATEMENT_END = re.compile(r"(?<=;)")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


def shipped_migrations() -> list[Migration]:
    """The migrations packaged with this code, numbered 1..N without gaps."""
    migrations = []
    for entry in (files("astraea.storage.sqlite") / "migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            version, name = match.groups()
            migrations.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"SQLite migrations must be numbered 1..N, found {versions}")
    return migrations


def split_statements(script: str) -> list[str]:
    """Cuts a script into the statements `execute` accepts one at a time.

    `executescript` would do it, but it commits first, and the migration must run inside the
    transaction that checked the schema version. `complete_statement` knows about comments,
    strings and trigger bodies, so a `;` inside them does not end a statement.
    """
    statements = []
    pending = ""
    for fragment in _STATEMENT_END.split(script):
        pending += fragment
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


async def migrate(database: Database, migrations: Sequence[Migration]) -> int:
    """Applies the migrations newer than the database's version; returns the new version."""
    newest = migrations[-1].version if migrations else 0
    async with database.transaction() as tx:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL"
            ") STRICT"
        )
        row = await tx.fetch_one("SELECT coalesce(max(version), 0) FROM schema_version")
        current = 0 if row is None else int(row[0])
        if current > newest:
            raise SchemaTooNew(
                f"the database schema is at version {current} but this Astraea knows versions "
                f"up to {newest}: upgrade Astraea to use this database"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in split_statements(migration.script):
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time_ns() // 1000),
            )
    return newest
