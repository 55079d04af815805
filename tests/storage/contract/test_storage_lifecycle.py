"""Storage contract as a whole: persistence across reopen, several storages on one database,
concurrent tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from astraea.core.interface import Interface
from astraea.storage import open_storage
from astraea.storage.base import AlreadyExists, Realm, Storage

InterfaceFactory = Callable[..., Interface]


async def test_everything_survives_close_and_reopen(
    storage_url: str, make_interface: InterfaceFactory
) -> None:
    realm = Realm(name="durable", jwt_public_key_pem="pem", device_registration_limit=5)
    interface = make_interface(description="kept")
    storage = await open_storage(storage_url)
    await storage.realms.create(realm)
    await storage.interfaces.install("durable", interface)
    await storage.close()

    reopened = await open_storage(storage_url)
    try:
        assert await reopened.realms.get("durable") == realm
        assert await reopened.interfaces.list_all("durable") == [interface]
    finally:
        await reopened.close()


async def test_two_storages_on_one_database_see_each_others_commits(
    storage: Storage, storage_url: str
) -> None:
    second = await open_storage(storage_url)
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
