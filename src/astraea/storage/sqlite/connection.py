"""The one SQLite connection of a storage instance, and the only way statements reach it.

Settings, for a server that must keep what it acknowledged and serve reads while it writes:
- WAL journal: readers (other processes too, e.g. an admin command) never block the writer.
- synchronous=FULL rather than NORMAL: in WAL mode NORMAL survives a process crash but can lose
  the last commits on power loss or an OS crash, and the platform acknowledges QoS 1/2 publishes
  once they are stored. Writers that need throughput put several messages in one transaction
  (one fsync per transaction) instead of weakening this.
- foreign_keys=ON: realm and device deletion rely on ON DELETE CASCADE.
- busy_timeout: another process holding the write lock makes a statement wait, not fail.

Statements from concurrent tasks share one connection, so an asyncio lock keeps each
transaction (and each single read) whole: without it a task could read another task's
uncommitted writes, or slip its statements into the middle of that transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from astraea.storage.base import StorageError

BUSY_TIMEOUT_MS = 5000
# The first release with STRICT tables.
MINIMUM_SQLITE_VERSION = (3, 37, 0)

# Positional (?) or named (:name) parameters.
Params = Sequence[object] | Mapping[str, object]


class Executor:
    """Runs statements on a connection its caller already holds exclusively."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Returns how many rows the statement changed."""
        async with self._connection.execute(sql, params) as cursor:
            return cursor.rowcount

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._connection.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._connection.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


class Database:
    """Serialises the work of concurrent tasks on the shared connection."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self._executor = Executor(connection)
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """Commits when the block ends, rolls back if it raises.

        BEGIN IMMEDIATE takes SQLite's write lock up front, so a transaction that reads and
        then writes cannot fail half-way because another process started writing.
        """
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._executor
                await self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    await self._connection.execute("ROLLBACK")
                raise

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement, atomic on its own; returns how many rows it changed."""
        async with self._lock:
            return await self._executor.execute(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._lock:
            return await self._executor.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return await self._executor.fetch_all(sql, params)

    async def close(self) -> None:
        """Waits for the running transaction, then closes the connection."""
        async with self._lock:
            await self._connection.close()


async def connect(path: Path) -> Database:
    """Opens (creating if needed) the database file at `path` with the settings above."""
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE_VERSION:
        wanted = ".".join(map(str, MINIMUM_SQLITE_VERSION))
        raise StorageError(f"SQLite {wanted} or newer is needed, found {sqlite3.sqlite_version}")
    if not path.parent.is_dir():
        raise StorageError(f"cannot create the database {path}: its folder does not exist")
    # isolation_level=None: no implicit BEGIN; Database decides where transactions start.
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        await _configure(connection, path)
    except BaseException:
        await connection.close()
        raise
    return Database(connection)


async def _configure(connection: aiosqlite.Connection, path: Path) -> None:
    await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    async with connection.execute("PRAGMA journal_mode = WAL") as cursor:
        row = await cursor.fetchone()
    if row is None or row[0] != "wal":
        mode = None if row is None else row[0]
        raise StorageError(f"{path}: SQLite refused WAL journal mode (kept {mode!r})")
    await connection.execute("PRAGMA synchronous = FULL")
    await connection.execute("PRAGMA foreign_keys = ON")
