"""The connection pool of a PostgreSQL storage, and the only way statements reach it.

Unlike SQLite's single connection, a pool of 1..`pool_size` connections lets PostgreSQL run
the statements of concurrent tasks in parallel, so nothing here serialises transactions: each
one holds its own connection from BEGIN to COMMIT. Transactions run at READ COMMITTED (the
default). Where SQLite's single writer made a read-then-write safe, the repositories take the
row lock that serialises the same writers (`FOR NO KEY UPDATE` on the realm or device row, which
still lets foreign-key checks of inserts proceed) or let a constraint decide (ON CONFLICT,
foreign keys); their docstrings say which.

Every connection gets `search_path` = the URL's schema when it names one, so statements never
qualify table names, and `application_name` = astraea, so `pg_stat_activity` tells who holds
a connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from astraea.storage.base import StorageError
from astraea.storage.postgres.url import PostgresTarget, quote_identifier

# A string: the driver's classes are generic only in their type stubs.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


class Database:
    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], target: PostgresTarget) -> None:
        self._pool = pool
        self.target = target
        self._closed = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Commits when the block ends, rolls back if it raises (or is cancelled)."""
        async with self._pool.acquire() as connection, connection.transaction():
            yield connection

    async def execute(self, sql: str, *args: object) -> int:
        """One statement, atomic on its own; returns how many rows it changed."""
        return changed(await self._pool.execute(sql, *args))

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return await self._pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        return await self._pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._pool.fetchval(sql, *args)

    async def close(self) -> None:
        """Waits for the connections in use to come back, then closes them all; closing
        again does nothing."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close()


def changed(status: str) -> int:
    """How many rows a statement changed, from its command tag (`UPDATE 3`, `INSERT 0 1`);
    0 for statements whose tag holds no count (`CREATE TABLE`)."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


def as_columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """The rows as one list per column: a batch bound as `unnest($1::type[], ...)` is one
    statement however many rows it has."""
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def connect(target: PostgresTarget) -> Database:
    """Opens the pool with one connection ready, so a wrong URL fails here and not later.

    Driver errors are re-raised as StorageError naming only the location: their text is
    scrubbed of the password and their chain is dropped, since callers log tracebacks.
    """
    settings = {"application_name": "astraea"}
    if target.schema is not None:
        settings["search_path"] = quote_identifier(target.schema)
    try:
        pool = await asyncpg.create_pool(
            target.dsn, min_size=1, max_size=target.pool_size, server_settings=settings
        )
    except Exception as error:
        reason = _scrubbed(f"{type(error).__name__}: {error}", target)
        message = f"cannot connect to PostgreSQL at {target.location}: {reason}"
    else:
        return Database(pool, target)
    raise StorageError(message)


def _scrubbed(text: str, target: PostgresTarget) -> str:
    password = urlsplit(target.dsn).password
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text
