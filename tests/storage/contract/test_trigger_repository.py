"""TriggerRepository contract: round trips, rules, versions, persistence."""

from __future__ import annotations

import pytest
from storage_support import RawTables
from trigger_builders import DEVICE, IFACE, device_trigger, make_policy, make_trigger

from astraea.core.device_id import decode_device_id
from astraea.storage import open_storage
from astraea.storage.base import AlreadyExists, NotFound, PolicyNotFound, Realm, Storage


async def test_installed_trigger_reads_back_with_its_ids(storage: Storage, realm: str) -> None:
    trigger = make_trigger()

    installed = await storage.triggers.install(realm, trigger)

    assert installed.trigger == trigger
    assert len(installed.simple_trigger_ids) == 2
    assert len({installed.trigger_id, *installed.simple_trigger_ids}) == 3
    assert await storage.triggers.get(realm, "t") == installed
    assert await storage.triggers.list_all(realm) == [installed]


async def test_unknown_triggers_and_realms(storage: Storage, realm: str) -> None:
    await storage.triggers.install(realm, make_trigger())

    assert await storage.triggers.get(realm, "nope") is None
    assert await storage.triggers.get("other", "t") is None
    assert await storage.triggers.list_names("other") == []
    assert await storage.triggers.list_all("other") == []
    with pytest.raises(NotFound, match="other"):
        await storage.triggers.install("other", make_trigger(realm="other"))


async def test_list_names_and_list_all_are_sorted(storage: Storage, realm: str) -> None:
    for name in ("b", "c", "a"):
        await storage.triggers.install(realm, make_trigger(name))

    assert await storage.triggers.list_names(realm) == ["a", "b", "c"]
    listed = await storage.triggers.list_all(realm)
    assert [installed.trigger.name for installed in listed] == ["a", "b", "c"]
    assert [await storage.triggers.get(realm, name) for name in "abc"] == listed


async def test_a_taken_name_raises_and_keeps_the_first(storage: Storage, realm: str) -> None:
    first = await storage.triggers.install(realm, make_trigger())

    with pytest.raises(AlreadyExists, match="'t'"):
        await storage.triggers.install(realm, device_trigger("t", "interface_added", IFACE, 0))
    assert await storage.triggers.get(realm, "t") == first


async def test_a_trigger_needs_its_policy(storage: Storage, realm: str) -> None:
    with pytest.raises(PolicyNotFound, match="retry"):
        await storage.triggers.install(realm, make_trigger(policy="retry"))
    assert await storage.triggers.list_names(realm) == []

    await storage.policies.install(realm, make_policy())
    installed = await storage.triggers.install(realm, make_trigger(policy="retry"))
    assert installed.trigger.policy == "retry"


async def test_delete_removes_the_trigger_and_its_simple_triggers(
    storage: Storage, realm: str, raw_tables: RawTables
) -> None:
    await storage.triggers.install(realm, make_trigger("kept"))
    await storage.triggers.install(realm, make_trigger("gone"))

    assert await storage.triggers.delete(realm, "gone") is True
    assert await storage.triggers.delete(realm, "gone") is False

    assert await storage.triggers.list_names(realm) == ["kept"]
    rows = await raw_tables.fetch("SELECT DISTINCT trigger_name FROM simple_triggers")
    assert rows == [("kept",)]


async def test_simple_trigger_subjects_are_stored_for_queries(
    storage: Storage, realm: str, raw_tables: RawTables
) -> None:
    """The columns that let queries find triggers without parsing documents (only the
    interface ones are read by a repository yet)."""
    installed = await storage.triggers.install(realm, make_trigger())

    rows = await raw_tables.fetch(
        "SELECT position, simple_trigger_id, kind, event, interface_name, interface_major,"
        " device_id, group_name FROM simple_triggers ORDER BY position"
    )
    assert rows == [
        (
            0,
            installed.simple_trigger_ids[0].bytes,
            "data_trigger",
            "incoming_data",
            IFACE,
            1,
            None,
            "plant",
        ),
        (
            1,
            installed.simple_trigger_ids[1].bytes,
            "device_trigger",
            "device_connected",
            None,
            None,
            decode_device_id(DEVICE),
            None,
        ),
    ]


async def test_interface_use_by_data_and_device_triggers(storage: Storage, realm: str) -> None:
    used = storage.triggers.is_interface_used_by_triggers
    await storage.triggers.install(realm, make_trigger("data"))
    await storage.triggers.install(realm, device_trigger("added", "interface_added", IFACE, 2))

    assert await used(realm, IFACE, 1) is True
    assert await used(realm, IFACE, 2) is True
    assert await used(realm, IFACE, 0) is False
    assert await used(realm, "org.example.Other", 1) is False
    assert await used("other", IFACE, 1) is False

    await storage.triggers.delete(realm, "data")
    assert await used(realm, IFACE, 1) is False


async def test_triggers_version_changes_with_every_install_and_delete(
    storage: Storage, realm: str
) -> None:
    version = storage.triggers.triggers_version
    seen = [await version(realm)]
    assert seen == [0]
    assert await version("other") == 0

    await storage.triggers.install(realm, make_trigger("a"))
    seen.append(await version(realm))
    await storage.triggers.install(realm, make_trigger("b"))
    seen.append(await version(realm))
    await storage.triggers.delete(realm, "a")
    seen.append(await version(realm))
    assert len(set(seen)) == 4

    with pytest.raises(AlreadyExists):
        await storage.triggers.install(realm, make_trigger("b"))
    assert await storage.triggers.delete(realm, "missing") is False
    await storage.policies.install(realm, make_policy())
    assert await version(realm) == seen[-1]


async def test_triggers_version_does_not_repeat_when_a_realm_comes_back(
    storage: Storage, realm: str
) -> None:
    await storage.triggers.install(realm, make_trigger())
    before = await storage.triggers.triggers_version(realm)

    await storage.realms.delete(realm)
    await storage.realms.create(Realm(name=realm, jwt_public_key_pem="pem"))
    assert await storage.triggers.triggers_version(realm) == 0
    assert await storage.triggers.list_all(realm) == []
    await storage.triggers.install(realm, make_trigger())

    assert await storage.triggers.triggers_version(realm) not in (0, before)


async def test_realm_deletion_removes_triggers_and_policies(storage: Storage, realm: str) -> None:
    await storage.realms.create(Realm(name="kept", jwt_public_key_pem="pem"))
    for name in (realm, "kept"):
        await storage.policies.install(name, make_policy())
        await storage.triggers.install(name, make_trigger(policy="retry", realm=name))

    assert await storage.realms.delete(realm) is True

    assert await storage.triggers.list_names(realm) == []
    assert await storage.policies.list_names(realm) == []
    assert await storage.triggers.list_names("kept") == ["t"]
    assert await storage.policies.list_names("kept") == ["retry"]


async def test_triggers_and_policies_survive_reopening(storage_url: str) -> None:
    first = await open_storage(storage_url)
    await first.realms.create(Realm(name="test", jwt_public_key_pem="pem"))
    await first.policies.install("test", make_policy())
    installed = await first.triggers.install("test", make_trigger(policy="retry"))
    version = await first.triggers.triggers_version("test")
    await first.close()

    second = await open_storage(storage_url)
    try:
        assert await second.triggers.get("test", "t") == installed
        assert await second.policies.get("test", "retry") == make_policy()
        assert await second.triggers.triggers_version("test") == version
    finally:
        await second.close()
