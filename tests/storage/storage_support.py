"""The backends the storage contract suite runs against, and raw access to their tables.

A `Backend` provisions an empty database for one test, named by a storage URL, and opens
`RawTables` on it: a second connection for the rows no repository writes yet (group members,
device deletions) and the columns no repository reads. Both backends share one table layout,
so raw statements are written once, with `?` placeholders.

Adding a backend: a `Backend` subclass here, an entry in BACKENDS, and the contract suite runs
against it too.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from tests.services import postgres_schema

from astraea.storage.postgres import parse_postgres_url
from astraea.storage.sqlite import database_path

Row = tuple[Any, ...]


class RawTables(Protocol):
    """Statements straight on the backend's tables, beside the storage under test."""

    # What a violated constraint (foreign key, uniqueness) raises.
    integrity_error: type[Exception]

    async def execute(self, sql: str, *params: object) -> None: ...

    async def fetch(self, sql: str, *params: object) -> list[Row]: ...

    async def tables(self) -> set[str]:
        """Every table of the schema but the migrator's bookkeeping."""

    async def close(self) -> None: ...


async def insert(raw: RawTables, table: str, row: Mapping[str, object]) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    await raw.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", *row.values())


class Backend(Protocol):
    def provision(self, tmp_path: Path) -> AbstractAsyncContextManager[str]:
        """An empty database for one test, as a storage URL; removed afterwards."""

    async def raw_tables(self, url: str) -> RawTables: ...


class SqliteRawTables:
    integrity_error = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None)
        self._connection.execute("PRAGMA foreign_keys = ON")

    async def execute(self, sql: str, *params: object) -> None:
        self._connection.execute(sql, params)

    async def fetch(self, sql: str, *params: object) -> list[Row]:
        return self._connection.execute(sql, params).fetchall()

    async def tables(self) -> set[str]:
        rows = await self.fetch("SELECT name FROM sqlite_schema WHERE type = 'table'")
        return {name for (name,) in rows} - {"schema_version", "sqlite_sequence"}

    async def close(self) -> None:
        self._connection.close()


class SqliteBackend:
    @asynccontextmanager
    async def provision(self, tmp_path: Path) -> AsyncIterator[str]:
        yield f"sqlite://{tmp_path / 'astraea.db'}"

    async def raw_tables(self, url: str) -> RawTables:
        return SqliteRawTables(database_path(url))


class PostgresRawTables:
    integrity_error = asyncpg.IntegrityConstraintViolationError

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, *params: object) -> None:
        await self._connection.execute(_numbered(sql), *params)

    async def fetch(self, sql: str, *params: object) -> list[Row]:
        return [tuple(row) for row in await self._connection.fetch(_numbered(sql), *params)]

    async def tables(self) -> set[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {name for (name,) in rows} - {"schema_version"}

    async def close(self) -> None:
        await self._connection.close()


class PostgresBackend:
    def provision(self, tmp_path: Path) -> AbstractAsyncContextManager[str]:
        return postgres_schema()

    async def raw_tables(self, url: str) -> RawTables:
        target = parse_postgres_url(url)
        assert target.schema is not None
        connection = await asyncpg.connect(
            target.dsn, server_settings={"search_path": target.schema}
        )
        return PostgresRawTables(connection)


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, ... (raw test statements hold no other `?`)."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


BACKENDS: dict[str, Backend] = {"sqlite": SqliteBackend(), "postgres": PostgresBackend()}
