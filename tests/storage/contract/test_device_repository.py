"""DeviceRepository contract: registration, listing, status, aliases, attributes, traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from storage_support import RawTables, insert

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.storage import open_storage
from astraea.storage.base import (
    AlreadyExists,
    AlreadyRegistered,
    InterfaceUse,
    NotFound,
    Realm,
    RegistrationLimitReached,
    Storage,
    TrafficUpdate,
)

T0 = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
DEV_A = encode_device_id(bytes(range(16)))
DEV_B = encode_device_id(bytes(range(16, 32)))
DEV_C = encode_device_id(bytes(range(32, 48)))


def _id(n: int) -> str:
    return encode_device_id(n.to_bytes(16, "big"))


async def _confirmed(storage: Storage, realm: str, device_id: str) -> None:
    await storage.devices.register(realm, device_id, "hash", {}, T0)
    await storage.devices.record_credentials(realm, device_id, "1", "aa", "10.0.0.1", T0)


async def test_register_creates_a_pending_device(storage: Storage, realm: str) -> None:
    await storage.devices.register(realm, DEV_A, "hash1", {"org.x.A": (1, 2)}, T0)

    device = await storage.devices.get(realm, DEV_A)
    assert device is not None
    assert device.device_id == DEV_A
    assert device.credentials_secret_hash == "hash1"
    assert device.first_registration == T0
    assert device.first_credentials_request is None
    assert device.introspection == {"org.x.A": InterfaceUse("org.x.A", 1, 2)}
    assert (device.connected, device.credentials_inhibited, device.deletion_in_progress) == (
        False,
        False,
        False,
    )
    assert await storage.devices.get(realm, DEV_B) is None


async def test_reregistering_a_pending_device_replaces_secret_and_introspection(
    storage: Storage, realm: str
) -> None:
    await storage.devices.register(realm, DEV_A, "hash1", {"org.x.A": (1, 2)}, T0)
    await storage.devices.register(realm, DEV_A, "hash2", {"org.x.B": (0, 1)}, T0 + timedelta(1))

    device = await storage.devices.get(realm, DEV_A)
    assert device is not None
    assert device.credentials_secret_hash == "hash2"
    assert device.first_registration == T0
    assert list(device.introspection) == ["org.x.B"]


async def test_confirmed_device_cannot_register_until_unregistered(
    storage: Storage, realm: str
) -> None:
    await _confirmed(storage, realm, DEV_A)

    with pytest.raises(AlreadyRegistered):
        await storage.devices.register(realm, DEV_A, "other", {}, T0)
    assert await storage.devices.unregister(realm, DEV_A) is True
    unregistered = await storage.devices.get(realm, DEV_A)
    assert unregistered is not None
    assert unregistered.credentials_secret_hash is None
    assert unregistered.first_credentials_request is None

    await storage.devices.register(realm, DEV_A, "again", {}, T0)
    again = await storage.devices.get(realm, DEV_A)
    assert again is not None and again.credentials_secret_hash == "again"
    assert await storage.devices.unregister(realm, DEV_B) is False


async def test_registration_limit_counts_devices_holding_a_secret(storage: Storage) -> None:
    await storage.realms.create(Realm("limited", "pem", device_registration_limit=2))
    await storage.devices.register("limited", DEV_A, "h", {}, T0)
    await storage.devices.register("limited", DEV_B, "h", {}, T0)

    with pytest.raises(RegistrationLimitReached):
        await storage.devices.register("limited", DEV_C, "h", {}, T0)
    # A device already holding a secret takes no new place.
    await storage.devices.register("limited", DEV_A, "h2", {}, T0)
    await storage.devices.unregister("limited", DEV_B)
    await storage.devices.register("limited", DEV_C, "h", {}, T0)
    with pytest.raises(RegistrationLimitReached):
        await storage.devices.register("limited", DEV_B, "h", {}, T0)


async def test_register_in_an_unknown_realm_raises_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound):
        await storage.devices.register("nowhere", DEV_A, "h", {}, T0)


async def test_list_pages_in_id_order_with_a_cursor(storage: Storage, realm: str) -> None:
    await storage.realms.create(Realm("other", "pem"))
    ids = [_id(n) for n in (7, 3, 1 << 120, 5, 9)]
    for device_id in ids:
        await storage.devices.register(realm, device_id, "h", {}, T0)
    await storage.devices.register("other", _id(4), "h", {}, T0)

    first = await storage.devices.list_page(realm, 2, None)
    assert [d.device_id for d in first.devices] == [_id(3), _id(5)]
    assert first.next_token == 5
    second = await storage.devices.list_page(realm, 2, first.next_token)
    assert [d.device_id for d in second.devices] == [_id(7), _id(9)]
    third = await storage.devices.list_page(realm, 2, second.next_token)
    assert [d.device_id for d in third.devices] == [_id(1 << 120)]
    assert third.next_token is None

    everything = await storage.devices.list_page(realm, 5, -12345)
    assert len(everything.devices) == 5
    assert everything.next_token == 1 << 120
    assert (await storage.devices.list_page(realm, 5, everything.next_token)).devices == []
    assert (await storage.devices.list_page(realm, 5, 1 << 200)).devices == []


async def test_list_page_assembles_full_devices(
    storage: Storage, realm: str, raw_tables: RawTables
) -> None:
    for device_id in (DEV_A, DEV_B, DEV_C):
        await storage.devices.register(realm, device_id, "h", {"org.x.I": (0, 1)}, T0)
    await storage.devices.update_aliases(realm, DEV_B, {"name": "bee"})
    await storage.devices.update_attributes(realm, DEV_C, {"k": "v"})
    # No repository writes groups or deletions yet.
    for group, insertion_id in (("g2", 1), ("g1", 2)):
        await insert(
            raw_tables,
            "group_members",
            {
                "realm": realm,
                "device_id": decode_device_id(DEV_A),
                "group_name": group,
                "insertion_id": insertion_id,
            },
        )
    await insert(
        raw_tables,
        "device_deletions",
        {"realm": realm, "device_id": decode_device_id(DEV_C), "started_at": 1},
    )

    page = await storage.devices.list_page(realm, 10, None)

    by_id = {device.device_id: device for device in page.devices}
    assert by_id[DEV_A].groups == ["g1", "g2"]
    assert by_id[DEV_B].aliases == {"name": "bee"}
    assert by_id[DEV_C].attributes == {"k": "v"}
    assert by_id[DEV_C].deletion_in_progress is True
    assert all(list(d.introspection) == ["org.x.I"] for d in page.devices)


async def test_count_reports_total_and_connected(storage: Storage, realm: str) -> None:
    assert await storage.devices.count(realm) == (0, 0)
    for device_id in (DEV_A, DEV_B, DEV_C):
        await storage.devices.register(realm, device_id, "h", {}, T0)
    await storage.devices.mark_connected(realm, DEV_B, "10.0.0.2", T0)

    assert await storage.devices.count(realm) == (3, 1)


async def test_connection_state_and_flags(storage: Storage, realm: str) -> None:
    await storage.devices.register(realm, DEV_A, "h", {}, T0)
    later = T0 + timedelta(seconds=5)

    await storage.devices.mark_connected(realm, DEV_A, "10.0.0.2", T0)
    await storage.devices.set_pending_empty_cache(realm, DEV_A, True)
    await storage.devices.set_credentials_inhibited(realm, DEV_A, True)
    connected = await storage.devices.get(realm, DEV_A)
    assert connected is not None
    assert (connected.connected, connected.last_connection, connected.last_seen_ip) == (
        True,
        T0,
        "10.0.0.2",
    )
    assert connected.pending_empty_cache and connected.credentials_inhibited

    await storage.devices.mark_disconnected(realm, DEV_A, later)
    disconnected = await storage.devices.get(realm, DEV_A)
    assert disconnected is not None
    assert (disconnected.connected, disconnected.last_disconnection) == (False, later)

    await storage.devices.mark_connected(realm, DEV_A, "10.0.0.3", later)
    assert await storage.devices.count(realm) == (1, 1)


async def test_connections_carry_their_node(storage: Storage, realm: str) -> None:
    for device in (DEV_A, DEV_B, DEV_C):
        await storage.devices.register(realm, device, "h", {}, T0)
    await storage.devices.mark_connected(realm, DEV_A, "10.0.0.1", T0, "node-1")
    await storage.devices.mark_connected(realm, DEV_B, "10.0.0.2", T0, "node-1")
    await storage.devices.mark_connected(realm, DEV_C, "10.0.0.3", T0, "node-2")
    device = await storage.devices.get(realm, DEV_A)
    assert device is not None and device.connection_node == "node-1"
    assert sorted(await storage.devices.connected_through("node-1")) == sorted(
        [(realm, DEV_A), (realm, DEV_B)]
    )

    # B moved to node-2: a late disconnection from node-1 changes nothing.
    await storage.devices.mark_connected(realm, DEV_B, "10.0.0.2", T0, "node-2")
    assert not await storage.devices.mark_disconnected(realm, DEV_B, T0, "node-1")
    assert await storage.devices.count(realm) == (3, 3)
    assert await storage.devices.mark_disconnected(realm, DEV_B, T0, "node-2")
    assert not await storage.devices.mark_disconnected(realm, DEV_B, T0, "node-2")  # already
    assert await storage.devices.mark_disconnected(realm, DEV_A, T0)  # any node
    assert await storage.devices.connected_through("node-1") == []
    assert await storage.devices.count(realm) == (3, 1)
    with pytest.raises(NotFound):
        await storage.devices.mark_disconnected(realm, _id(999), T0, "node-1")


async def test_capabilities_are_kept(storage: Storage, realm: str) -> None:
    await storage.devices.register(realm, DEV_A, "h", {}, T0)
    device = await storage.devices.get(realm, DEV_A)
    assert device is not None and device.capabilities == {}
    capabilities = {"purge_properties_compression_format": "plaintext"}
    await storage.devices.set_capabilities(realm, DEV_A, capabilities)
    device = await storage.devices.get(realm, DEV_A)
    assert device is not None and device.capabilities == capabilities
    with pytest.raises(NotFound):
        await storage.devices.set_capabilities(realm, DEV_B, capabilities)


async def test_record_credentials_keeps_the_first_request_time(
    storage: Storage, realm: str
) -> None:
    await storage.devices.register(realm, DEV_A, "h", {}, T0)
    later = T0 + timedelta(hours=1)

    await storage.devices.record_credentials(realm, DEV_A, "111", "ab", "10.0.0.1", T0)
    await storage.devices.record_credentials(realm, DEV_A, "222", "ab", None, later)

    device = await storage.devices.get(realm, DEV_A)
    assert device is not None
    assert (device.cert_serial, device.cert_aki, device.first_credentials_request) == (
        "222",
        "ab",
        T0,
    )
    assert device.last_credentials_request_ip is None


async def test_writers_on_an_unknown_device_raise_not_found(storage: Storage, realm: str) -> None:
    devices = storage.devices
    for write in (
        devices.record_credentials(realm, DEV_A, "1", "a", None, T0),
        devices.set_credentials_inhibited(realm, DEV_A, True),
        devices.update_aliases(realm, DEV_A, {"t": "a"}),
        devices.update_attributes(realm, DEV_A, {"k": "v"}),
        devices.set_introspection(realm, DEV_A, {}),
        devices.mark_connected(realm, DEV_A, "1.2.3.4", T0),
        devices.mark_disconnected(realm, DEV_A, T0),
        devices.set_pending_empty_cache(realm, DEV_A, True),
    ):
        with pytest.raises(NotFound):
            await write


async def test_aliases_are_unique_in_the_realm_and_change_atomically(
    storage: Storage, realm: str
) -> None:
    await storage.devices.register(realm, DEV_A, "h", {}, T0)
    await storage.devices.register(realm, DEV_B, "h", {}, T0)
    await storage.devices.update_aliases(realm, DEV_A, {"name": "one", "serial": "two"})
    await storage.devices.update_aliases(realm, DEV_B, {"name": "three"})

    with pytest.raises(AlreadyExists):
        await storage.devices.update_aliases(realm, DEV_B, {"other": "four", "x": "one"})
    with pytest.raises(NotFound):
        await storage.devices.update_aliases(realm, DEV_B, {"name": None, "missing": None})
    b = await storage.devices.get(realm, DEV_B)
    assert b is not None and b.aliases == {"name": "three"}

    await storage.devices.update_aliases(realm, DEV_A, {"name": "two", "serial": "one"})
    await storage.devices.update_aliases(realm, DEV_B, {"name": None})
    a = await storage.devices.get(realm, DEV_A)
    assert a is not None and a.aliases == {"name": "two", "serial": "one"}
    assert await storage.devices.find_by_alias(realm, "two") == DEV_A
    assert await storage.devices.find_by_alias(realm, "three") is None


async def test_attributes_set_replace_and_delete(storage: Storage, realm: str) -> None:
    await storage.devices.register(realm, DEV_A, "h", {}, T0)
    await storage.devices.update_attributes(realm, DEV_A, {"a": "1", "b": "2"})
    await storage.devices.update_attributes(realm, DEV_A, {"a": "3", "b": None})

    with pytest.raises(NotFound):
        await storage.devices.update_attributes(realm, DEV_A, {"a": None, "missing": None})
    device = await storage.devices.get(realm, DEV_A)
    assert device is not None and device.attributes == {"a": "3"}


async def test_introspection_changes_keep_previous_interfaces_and_counters(
    storage: Storage, realm: str
) -> None:
    await storage.devices.register(realm, DEV_A, "h", {"org.x.A": (0, 1), "org.x.B": (1, 0)}, T0)
    await storage.devices.add_traffic(
        [
            TrafficUpdate(realm, DEV_A, "org.x.A", 0, 2, 20, T0),
            TrafficUpdate(realm, DEV_A, "org.x.A", 0, 1, 5, T0),
            TrafficUpdate(realm, DEV_A, None, None, 1, 3, T0),
            TrafficUpdate(realm, DEV_B, "org.x.A", 0, 1, 1, T0),
        ]
    )
    await storage.devices.set_introspection(realm, DEV_A, {"org.x.A": (1, 0), "org.x.B": (1, 2)})
    await storage.devices.add_traffic([TrafficUpdate(realm, DEV_A, "org.x.A", 0, 1, 1, T0)])

    device = await storage.devices.get(realm, DEV_A)
    assert device is not None
    assert (device.total_received_msgs, device.total_received_bytes) == (5, 29)
    assert device.introspection == {
        "org.x.A": InterfaceUse("org.x.A", 1, 0),
        "org.x.B": InterfaceUse("org.x.B", 1, 2),
    }
    assert device.previous_interfaces == [InterfaceUse("org.x.A", 0, 1, 4, 26)]

    await storage.devices.set_introspection(realm, DEV_A, {"org.x.A": (0, 3)})
    back = await storage.devices.get(realm, DEV_A)
    assert back is not None
    assert back.introspection == {"org.x.A": InterfaceUse("org.x.A", 0, 3, 4, 26)}
    assert [(u.name, u.major) for u in back.previous_interfaces] == [
        ("org.x.A", 1),
        ("org.x.B", 1),
    ]
    assert await storage.interfaces.is_used_by_devices(realm, "org.x.A", 0)
    assert not await storage.interfaces.is_used_by_devices(realm, "org.x.B", 1)


async def test_devices_survive_reopen(storage_url: str, storage: Storage, realm: str) -> None:
    await _confirmed(storage, realm, DEV_A)
    await storage.devices.update_aliases(realm, DEV_A, {"name": "kept"})
    await storage.close()

    reopened = await open_storage(storage_url)
    try:
        device = await reopened.devices.get(realm, DEV_A)
        assert device is not None
        assert (device.cert_serial, device.aliases) == ("1", {"name": "kept"})
    finally:
        await reopened.close()


async def test_deleting_the_realm_deletes_its_devices(storage: Storage, realm: str) -> None:
    await _confirmed(storage, realm, DEV_A)
    await storage.realms.delete(realm)
    await storage.realms.create(Realm(realm, "pem"))

    assert await storage.devices.get(realm, DEV_A) is None
