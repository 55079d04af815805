"""Whole-storage behaviour: persistence across reopen, several connections, concurrent tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from astraea.core.interface import Interface
from astraea.storage import open_storage
from astraea.storage.base import AlreadyExists, Realm, Storage
from astraea.storage.sqlite.connection import connect
from astraea.storage.sqlite.migrator import migrate, shipped_migrations

InterfaceFactory = Callable[..., Interface]


async def test_everything_survives_close_and_reopen(
    db_path: Path, make_interface: InterfaceFactory
) -> None:
    realm = Realm(name="durable", jwt_public_key_pem="pem", device_registration_limit=5)
    interface = make_interface(description="kept")
    storage = await open_storage(f"sqlite://{db_path}")
    await storage.realms.create(realm)
    await storage.interfaces.install("durable", interface)
    await storage.close()

    reopened = await open_storage(f"sqlite://{db_path}")
    try:
        assert await reopened.realms.get("durable") == realm
        assert await reopened.interfaces.list_all("durable") == [interface]
    finally:
        await reopened.close()


async def test_two_storages_on_one_file_see_each_others_commits(
    storage: Storage, db_path: Path
) -> None:
    second = await open_storage(f"sqlite://{db_path}")
    try:
        await storage.realms.create(Realm(name="first", jwt_public_key_pem="pem"))
        await second.realms.create(Realm(name="second", jwt_public_key_pem="pem"))

        assert await storage.realms.list_names() == ["first", "second"]
        assert await second.realms.list_names() == ["first", "second"]
    finally:
        await second.close()


async def test_concurrent_creates_of_one_realm_succeed_once(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.realms.create(Realm(name="race", jwt_public_key_pem=str(i))) for i in range(20)),
        return_exceptions=True,
    )

    assert results.count(None) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not None)
    assert await storage.realms.list_names() == ["race"]


async def test_concurrent_writers_and_readers_keep_every_write(
    storage: Storage, make_interface: InterfaceFactory
) -> None:
    realms = [f"realm{i}" for i in range(10)]

    async def populate(realm: str) -> None:
        await storage.realms.create(Realm(name=realm, jwt_public_key_pem="pem"))
        for major in range(5):
            await storage.interfaces.install(realm, make_interface(major=major))
            assert major in await storage.interfaces.list_majors(realm, "org.example.Sensors")

    await asyncio.gather(*(populate(realm) for realm in realms))

    assert await storage.realms.list_names() == sorted(realms)
    for realm in realms:
        assert await storage.interfaces.list_majors(realm, "org.example.Sensors") == list(range(5))


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
    storage: Storage, db_path: Path
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
        assert await storage.realms.list_names() == ["real"]
    finally:
        await database.close()
