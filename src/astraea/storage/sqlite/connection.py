"""The one SQLite connection of a storage instance, and the only way statements reach it.

Settings, for a server that must keep what it acknowledged and serve reads while it writes:
- WAL journal: readers (other processes too, e.g. an admin command) never block the writer.
- synchronous=FULL rather than NORMAL: in WAL mode NORMAL survives a process crash but can lose
  the last commits on power loss or an OS crash, and the platform acknowledges QoS 1/2 publishes
  once they are stored. Writers that need throughput put several messages in one transaction
  (one fsync per transaction) instead of weakening this.
- foreign_keys=ON: realm and device deletion rely on ON DELETE CASCADE.
- busy_timeout: another process holding the write lock makes a statement wait, not fail.
- a 64 MiB page cache: ingestion appends to the newest page of every active series, and with
  thousands of devices those pages outgrow the 2 MiB default, which then re-reads them from
  the WAL and spills half-done transactions into it.
- WAL checkpoints every 10 000 pages (~40 MiB) instead of 1 000: a checkpoint copies each
  page once however many commits rewrote it, and ingestion rewrites the same series pages
  commit after commit.

The connection lives on its own thread, which runs every statement: the event loop never
blocks on SQLite, which releases the GIL while it steps a statement (binding each row's
parameters still takes the GIL). Each call to that thread costs a wake-up of both sides
(~40 µs), so hot paths hand it a whole transaction at once (`Database.run`), with
`executemany` for their rows.

Statements from concurrent tasks share one connection, so an asyncio lock keeps each
transaction (and each single read) whole: without it a task could read another task's
uncommitted writes, or slip its statements into the middle of that transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from astraea.storage.base import StorageError

BUSY_TIMEOUT_MS = 5000
CACHE_KIB = 64 * 1024
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The first release with STRICT tables.
MINIMUM_SQLITE_VERSION = (3, 37, 0)

# Positional (?) or named (:name) parameters.
Params = Sequence[object] | Mapping[str, object]
Result = TypeVar("Result")
# Work for the database thread: runs there with the connection, may not touch the event loop.
Work = Callable[[sqlite3.Connection], Result]


class Executor:
    """Runs statements on a connection its caller already holds exclusively."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Returns how many rows the statement changed."""
        return await self._database.call(partial(_execute, sql=sql, params=params))

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await self._database.call(partial(fetch_one, sql=sql, params=params))

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._database.call(partial(_fetch_all, sql=sql, params=params))


class Database:
    """Serialises the work of concurrent tasks on the shared connection."""

    def __init__(self, connection: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._thread = thread
        self._executor = Executor(self)
        self._lock = asyncio.Lock()
        self._closed = False

    async def call(self, work: Work[Result]) -> Result:
        """Runs `work` on the database thread; callers hold the lock (or need no isolation)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, work, self._connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """Commits when the block ends, rolls back if it raises.

        BEGIN IMMEDIATE takes SQLite's write lock up front, so a transaction that reads and
        then writes cannot fail half-way because another process started writing.
        """
        async with self._lock:
            await self._executor.execute("BEGIN IMMEDIATE")
            try:
                yield self._executor
                await self._executor.execute("COMMIT")
            except BaseException:
                await self.call(_rollback)
                raise

    async def run(self, work: Work[Result]) -> Result:
        """Runs `work` in one transaction (as `transaction` does) with a single call to the
        database thread, for hot paths whose statements do not depend on the event loop."""
        async with self._lock:
            return await self.call(partial(_in_transaction, work))

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
        """Waits for the running transaction, then closes the connection and its thread;
        closing again does nothing."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await self.call(sqlite3.Connection.close)
        self._thread.shutdown()


async def connect(path: Path) -> Database:
    """Opens (creating if needed) the database file at `path` with the settings above."""
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE_VERSION:
        wanted = ".".join(map(str, MINIMUM_SQLITE_VERSION))
        raise StorageError(f"SQLite {wanted} or newer is needed, found {sqlite3.sqlite_version}")
    if not path.parent.is_dir():
        raise StorageError(f"cannot create the database {path}: its folder does not exist")
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
    # isolation_level=None: no implicit BEGIN; Database decides where transactions start.
    opener = partial(sqlite3.connect, path, isolation_level=None, check_same_thread=False)
    try:
        connection = await asyncio.get_running_loop().run_in_executor(thread, opener)
    except BaseException:
        thread.shutdown()
        raise
    database = Database(connection, thread)
    try:
        connection.row_factory = sqlite3.Row
        await database.call(partial(_configure, path=path))
    except BaseException:
        await database.close()
        raise
    return database


def _configure(connection: sqlite3.Connection, *, path: Path) -> None:
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    row = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if row is None or row[0] != "wal":
        mode = None if row is None else row[0]
        raise StorageError(f"{path}: SQLite refused WAL journal mode (kept {mode!r})")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")


def fetch_one(connection: sqlite3.Connection, sql: str, params: Params = ()) -> sqlite3.Row | None:
    """The first row of `sql`, for work running on the database thread."""
    cursor = connection.execute(sql, params)
    try:
        row: sqlite3.Row | None = cursor.fetchone()
        return row
    finally:
        cursor.close()  # a statement left running would hold its read snapshot


def _execute(connection: sqlite3.Connection, sql: str, params: Params) -> int:
    return connection.execute(sql, params).rowcount


def _fetch_all(connection: sqlite3.Connection, sql: str, params: Params) -> list[sqlite3.Row]:
    return connection.execute(sql, params).fetchall()


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _in_transaction(work: Work[Result], connection: sqlite3.Connection) -> Result:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise
    return result
