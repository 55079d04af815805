"""RealmRepository contract: round trips, uniqueness, updates, deletion."""

from __future__ import annotations

import pytest

from astraea.storage.base import AlreadyExists, NotFound, Realm, Storage


def _network_topology_realm(name: str) -> Realm:
    return Realm(
        name=name,
        jwt_public_key_pem="-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n",
        replication_class="NetworkTopologyStrategy",
        replication_factor=None,
        datacenter_replication_factors={"dc1": 3, "dc2": 1},
        device_registration_limit=10,
        datastream_maximum_storage_retention=3600,
    )


async def test_created_realm_reads_back_field_for_field(storage: Storage) -> None:
    simple = Realm(name="simple", jwt_public_key_pem="pem")
    topology = _network_topology_realm("topology")
    await storage.realms.create(simple)
    await storage.realms.create(topology)

    assert await storage.realms.get("simple") == simple
    assert await storage.realms.get("topology") == topology


async def test_get_of_unknown_realm_is_none(storage: Storage) -> None:
    assert await storage.realms.get("missing") is None


async def test_creating_an_existing_realm_raises_and_keeps_the_first(storage: Storage) -> None:
    await storage.realms.create(Realm(name="dup", jwt_public_key_pem="first"))

    with pytest.raises(AlreadyExists, match="dup"):
        await storage.realms.create(Realm(name="dup", jwt_public_key_pem="second"))

    stored = await storage.realms.get("dup")
    assert stored is not None and stored.jwt_public_key_pem == "first"


async def test_list_names_is_sorted(storage: Storage) -> None:
    assert await storage.realms.list_names() == []
    for name in ("charlie", "alpha", "bravo"):
        await storage.realms.create(Realm(name=name, jwt_public_key_pem="pem"))

    assert await storage.realms.list_names() == ["alpha", "bravo", "charlie"]


async def test_update_replaces_every_setting(storage: Storage) -> None:
    await storage.realms.create(_network_topology_realm("r"))
    changed = Realm(
        name="r",
        jwt_public_key_pem="new-pem",
        replication_class="SimpleStrategy",
        replication_factor=2,
        datacenter_replication_factors=None,
        device_registration_limit=None,
        datastream_maximum_storage_retention=None,
    )

    await storage.realms.update(changed)

    assert await storage.realms.get("r") == changed


async def test_update_of_unknown_realm_raises_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await storage.realms.update(Realm(name="ghost", jwt_public_key_pem="pem"))
    assert await storage.realms.list_names() == []


async def test_delete_reports_whether_the_realm_existed(storage: Storage) -> None:
    await storage.realms.create(Realm(name="gone", jwt_public_key_pem="pem"))
    await storage.realms.create(Realm(name="kept", jwt_public_key_pem="pem"))

    assert await storage.realms.delete("gone") is True
    assert await storage.realms.delete("gone") is False
    assert await storage.realms.get("gone") is None
    assert await storage.realms.list_names() == ["kept"]
