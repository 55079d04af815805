"""InterfaceRepository contract: installs, minor updates, listings, collisions, use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from storage_support import RawTables

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.core.interface import Aggregation, Interface
from astraea.storage.base import AlreadyExists, NotFound, Realm, Storage

DEVICE_A = encode_device_id(bytes(range(16)))
DEVICE_B = encode_device_id(bytes(range(16, 32)))
T0 = datetime(2024, 5, 1, tzinfo=UTC)

InterfaceFactory = Callable[..., Interface]


async def test_installed_interface_reads_back_equal(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    interface = make_interface(description="Sensor samples", aggregation=Aggregation.OBJECT)

    await storage.interfaces.install(realm, interface)

    assert await storage.interfaces.get(realm, interface.name, 0) == interface


async def test_get_of_unknown_interface_or_major_is_none(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(major=1))

    assert await storage.interfaces.get(realm, "org.example.Sensors", 2) is None
    assert await storage.interfaces.get(realm, "org.example.Other", 1) is None
    assert await storage.interfaces.get("otherrealm", "org.example.Sensors", 1) is None


async def test_installing_the_same_name_and_major_raises(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(minor=1))

    with pytest.raises(AlreadyExists, match=r"org\.example\.Sensors v0"):
        await storage.interfaces.install(realm, make_interface(minor=2))

    stored = await storage.interfaces.get(realm, "org.example.Sensors", 0)
    assert stored is not None and stored.minor == 1


async def test_another_major_of_an_installed_name_installs(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(major=0))
    await storage.interfaces.install(realm, make_interface(major=1))

    assert await storage.interfaces.list_majors(realm, "org.example.Sensors") == [0, 1]


async def test_installing_into_an_unknown_realm_raises_not_found(
    storage: Storage, make_interface: InterfaceFactory
) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        await storage.interfaces.install("nowhere", make_interface())


async def test_realms_do_not_share_interfaces(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.realms.create(Realm(name="other", jwt_public_key_pem="pem"))
    await storage.interfaces.install(realm, make_interface())
    await storage.interfaces.install("other", make_interface())

    assert await storage.interfaces.delete("other", "org.example.Sensors", 0) is True
    assert await storage.interfaces.list_names("other") == []
    assert await storage.interfaces.list_names(realm) == ["org.example.Sensors"]


async def test_replace_stores_the_minor_update(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(minor=1))
    updated = make_interface(minor=3, description="now documented")

    await storage.interfaces.replace(realm, updated)

    assert await storage.interfaces.get(realm, updated.name, 0) == updated
    assert await storage.interfaces.list_majors(realm, updated.name) == [0]


async def test_replace_of_an_uninstalled_major_raises_not_found(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(major=0))

    with pytest.raises(NotFound, match="v1"):
        await storage.interfaces.replace(realm, make_interface(major=1))
    assert await storage.interfaces.list_majors(realm, "org.example.Sensors") == [0]


async def test_listings_are_sorted(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    installed = [
        make_interface("org.example.Zeta", 2),
        make_interface("org.example.Alpha", 1),
        make_interface("org.example.Zeta", 0),
        make_interface("org.example.Alpha", 0),
    ]
    for interface in installed:
        await storage.interfaces.install(realm, interface)

    assert await storage.interfaces.list_names(realm) == ["org.example.Alpha", "org.example.Zeta"]
    assert await storage.interfaces.list_majors(realm, "org.example.Zeta") == [0, 2]
    assert await storage.interfaces.list_majors(realm, "org.example.Missing") == []
    all_interfaces = await storage.interfaces.list_all(realm)
    assert [(i.name, i.major) for i in all_interfaces] == [
        ("org.example.Alpha", 0),
        ("org.example.Alpha", 1),
        ("org.example.Zeta", 0),
        ("org.example.Zeta", 2),
    ]
    assert set(all_interfaces) == set(installed)


@pytest.mark.parametrize(
    "candidate", ["org.example.sensors", "ORG.EXAMPLE.SENSORS", "org.exam-ple.Sen-sors"]
)
async def test_name_collision_ignores_case_and_hyphens(
    storage: Storage, realm: str, make_interface: InterfaceFactory, candidate: str
) -> None:
    await storage.interfaces.install(realm, make_interface("org.example.Sensors"))

    assert await storage.interfaces.find_name_collision(realm, candidate) == "org.example.Sensors"


async def test_no_collision_with_itself_other_names_or_other_realms(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.realms.create(Realm(name="other", jwt_public_key_pem="pem"))
    await storage.interfaces.install(realm, make_interface("org.example.Sensors"))

    assert await storage.interfaces.find_name_collision(realm, "org.example.Sensors") is None
    assert await storage.interfaces.find_name_collision(realm, "org.example.Sensor") is None
    assert await storage.interfaces.find_name_collision("other", "org.example.sensors") is None


async def test_delete_reports_whether_the_major_was_installed(
    storage: Storage, realm: str, make_interface: InterfaceFactory
) -> None:
    await storage.interfaces.install(realm, make_interface(major=0))
    await storage.interfaces.install(realm, make_interface(major=1))

    assert await storage.interfaces.delete(realm, "org.example.Sensors", 0) is True
    assert await storage.interfaces.delete(realm, "org.example.Sensors", 0) is False
    assert await storage.interfaces.list_majors(realm, "org.example.Sensors") == [1]


async def test_is_used_by_devices_follows_current_introspections(
    storage: Storage, realm: str, raw_tables: RawTables
) -> None:
    await storage.realms.create(Realm(name="other", jwt_public_key_pem="pem"))
    register = storage.devices.register
    await register(realm, DEVICE_A, "h", {"org.example.Current": (0, 1)}, T0)
    await register(realm, DEVICE_B, "h", {"org.example.Previous": (0, 1)}, T0)
    await storage.devices.set_introspection(realm, DEVICE_B, {})  # now a previous interface
    await register("other", DEVICE_A, "h", {"org.example.Elsewhere": (0, 1)}, T0)

    used = storage.interfaces.is_used_by_devices
    assert await used(realm, "org.example.Current", 0) is True
    assert await used(realm, "org.example.Current", 1) is False
    assert await used(realm, "org.example.Previous", 0) is False
    assert await used(realm, "org.example.Elsewhere", 0) is False
    assert await used("other", "org.example.Elsewhere", 0) is True

    # No repository deletes devices yet; the introspection goes with the device row.
    await raw_tables.execute(
        "DELETE FROM devices WHERE realm = ? AND device_id = ?", realm, decode_device_id(DEVICE_A)
    )
    assert await used(realm, "org.example.Current", 0) is False
