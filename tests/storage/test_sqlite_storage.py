"""The SQLite connection's transactions under concurrent tasks: isolation and cancellation.
Storage-wide behaviour both backends share is in contract/test_storage_lifecycle.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from astraea.storage.base import Storage
from astraea.storage.sqlite.connection import connect
from astraea.storage.sqlite.migrator import migrate, shipped_migrations


async def test_readers_never_see_a_transaction_that_rolls_back(db_path: Path) -> None:
    database = await connect(db_path)
    await migrate(database, shipped_migrations())
    written = asyncio.Event()

    async def failing_writer() -> None:
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class) VALUES ('phantom', 'pem', 'S')"
            )
            written.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("abandoned")

    async def reader() -> list[str]:
        await written.wait()
        return [row["name"] for row in await database.fetch_all("SELECT name FROM realms")]

    try:
        writer_result, names = await asyncio.gather(
            failing_writer(), reader(), return_exceptions=True
        )
        assert isinstance(writer_result, RuntimeError)
        assert names == []
    finally:
        await database.close()


async def test_a_cancelled_transaction_rolls_back_and_frees_the_connection(
    sqlite_storage: Storage, db_path: Path
) -> None:
    database = await connect(db_path)
    inside = asyncio.Event()

    async def stalled_writer() -> None:
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class) VALUES ('phantom', 'pem', 'S')"
            )
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stalled_writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    try:
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class) VALUES ('real', 'pem', 'S')"
            )
        assert await sqlite_storage.realms.list_names() == ["real"]
    finally:
        await database.close()
