"""The connection's own thread: one-trip transactions, settings, closing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astraea.storage.sqlite.connection import (
    CACHE_KIB,
    WAL_AUTOCHECKPOINT_PAGES,
    Database,
    connect,
    fetch_one,
)


@pytest.fixture
async def database(db_path: Path) -> AsyncIterator[Database]:
    opened = await connect(db_path)
    await opened.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    try:
        yield opened
    finally:
        await opened.close()


async def _count(database: Database) -> int:
    row = await database.fetch_one("SELECT count(*) FROM t")
    assert row is not None
    return int(row[0])


async def test_run_commits_all_its_statements_off_the_event_loop(database: Database) -> None:
    loop_thread = threading.get_ident()

    def work(connection: sqlite3.Connection) -> int:
        assert threading.get_ident() != loop_thread
        connection.executemany("INSERT INTO t (x) VALUES (?)", [(n,) for n in range(100)])
        row = fetch_one(connection, "SELECT max(x) FROM t")
        assert row is not None
        return int(row[0])

    assert await database.run(work) == 99
    assert await _count(database) == 100


async def test_run_rolls_back_everything_when_its_work_fails(database: Database) -> None:
    def work(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t (x) VALUES (1)")
        connection.execute("INSERT INTO t (x) VALUES (1)")  # primary key violation

    with pytest.raises(sqlite3.IntegrityError):
        await database.run(work)

    assert await _count(database) == 0
    assert await database.call(lambda connection: connection.in_transaction) is False


async def test_run_waits_for_a_transaction_in_progress(database: Database) -> None:
    async with database.transaction() as tx:
        await tx.execute("INSERT INTO t (x) VALUES (1)")
        pending = asyncio.create_task(
            database.run(lambda connection: connection.execute("DELETE FROM t").rowcount)
        )
        await asyncio.sleep(0.01)
        assert not pending.done()  # it would otherwise have run inside this transaction
        await tx.execute("INSERT INTO t (x) VALUES (2)")

    assert await pending == 2


async def test_ingestion_settings(database: Database) -> None:
    cache = await database.fetch_one("PRAGMA cache_size")
    checkpoint = await database.fetch_one("PRAGMA wal_autocheckpoint")

    assert cache is not None and cache[0] == -CACHE_KIB
    assert checkpoint is not None and checkpoint[0] == WAL_AUTOCHECKPOINT_PAGES


async def test_closing_twice_is_harmless(db_path: Path) -> None:
    database = await connect(db_path)

    await database.close()
    await database.close()
