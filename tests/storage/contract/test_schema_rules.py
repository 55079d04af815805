"""The schema's promises that no repository exercises yet: cascades and uniqueness.

Both backends share the table layout, so the rows are written once; `raw_tables` inserts them
beside the storage under test.
"""

from __future__ import annotations

import pytest
from storage_support import RawTables, insert

from astraea.storage.base import Realm, Storage

DEVICE = bytes(range(16))
TRIGGER_ID = bytes(range(100, 116))
SIMPLE_TRIGGER_ID = bytes(range(200, 216))


def realm_rows(realm: str, salt: int) -> dict[str, dict[str, object]]:
    """One row for every table a realm owns, in an order that satisfies the foreign keys;
    `salt` keeps globally unique ids distinct between realms."""
    owner = {"realm": realm, "device_id": DEVICE}
    trigger = bytes([salt]) + TRIGGER_ID[1:]
    simple_trigger = bytes([salt]) + SIMPLE_TRIGGER_ID[1:]
    series = {"major": 0, "path": "/a", "value_timestamp": 1, "reception_timestamp": 2}
    return {
        "interfaces": {
            "realm": realm,
            "name": "org.example.A",
            "major": 0,
            "minor": 1,
            "collision_key": "org.example.a",
            "type": "properties",
            "ownership": "device",
            "aggregation": "individual",
            "document": "{}",
        },
        "devices": owner,
        "device_deletions": {**owner, "started_at": 1},
        "device_interfaces": {
            **owner,
            "interface_name": "org.example.A",
            "major": 0,
            "minor": 1,
            "in_introspection": True,
        },
        "device_aliases": {**owner, "tag": "name", "alias": "alias"},
        "device_attributes": {**owner, "key": "k", "value": "v"},
        "group_members": {**owner, "group_name": "group", "insertion_id": 1},
        "individual_properties": {
            **owner,
            "interface_name": "org.example.A",
            "major": 0,
            "path": "/a",
            "value": b"\x00",
            "reception_timestamp": 1,
        },
        "individual_datastreams": {
            **owner,
            "interface_name": "org.example.B",
            **series,
            "value": b"\x00",
            "expires_at": None,
        },
        "object_datastreams": {
            **owner,
            "interface_name": "org.example.C",
            **series,
            "value": b"\x00",
            "expires_at": 3,
        },
        "datastream_paths": {
            **owner,
            "interface_name": "org.example.B",
            "major": 0,
            "path": "/a",
            "reception_timestamp": 1,
            "expires_at": None,
        },
        "trigger_policies": {"realm": realm, "name": "policy", "document": "{}"},
        "triggers": {
            "realm": realm,
            "name": "trigger",
            "trigger_id": trigger,
            "policy": "policy",
            "document": "{}",
        },
        "simple_triggers": {
            "realm": realm,
            "trigger_name": "trigger",
            "position": 0,
            "simple_trigger_id": simple_trigger,
            "kind": "device_trigger",
            "event": "device_connected",
            "device_id": DEVICE,
        },
        "trigger_deliveries": {
            **owner,
            "policy": "policy",
            "trigger_id": trigger,
            "simple_trigger_id": simple_trigger,
            "event_type": "device_connected_event",
            "event": b"\x00",
            "enqueued_at": 1,
            "next_attempt_at": 1,
        },
        "trigger_queue_leases": {"realm": realm, "policy": "policy", "owner": "e", "expires_at": 1},
        "mqtt_sessions": {**owner, "owner": "node", "subscriptions": "{}"},
        "mqtt_session_messages": {
            **owner,
            "position": 0,
            "topic": "t",
            "payload": b"\x00",
            "qos": 1,
            "sent": False,
        },
    }


# Tables of the platform itself rather than of a realm.
PLATFORM_TABLES = {"realms", "transport_nodes"}


REALM_TABLES = set(realm_rows("any", 0))


async def _row_counts(raw_tables: RawTables, realm: str) -> dict[str, int]:
    counts = {}
    for table in REALM_TABLES:
        ((count,),) = await raw_tables.fetch(f"SELECT count(*) FROM {table} WHERE realm = ?", realm)
        counts[table] = count
    return counts


@pytest.fixture
async def two_realms(storage: Storage, raw_tables: RawTables) -> None:
    for salt, name in enumerate(("doomed", "kept")):
        await storage.realms.create(Realm(name=name, jwt_public_key_pem="pem"))
        for table, row in realm_rows(name, salt).items():
            await insert(raw_tables, table, row)


async def test_every_realm_owned_table_is_covered(raw_tables: RawTables) -> None:
    assert await raw_tables.tables() - PLATFORM_TABLES == REALM_TABLES


@pytest.mark.usefixtures("two_realms")
async def test_realm_delete_cascades_to_every_table(
    storage: Storage, raw_tables: RawTables
) -> None:
    assert await storage.realms.delete("doomed") is True

    assert set((await _row_counts(raw_tables, "doomed")).values()) == {0}
    assert set((await _row_counts(raw_tables, "kept")).values()) == {1}


@pytest.mark.usefixtures("two_realms")
async def test_device_delete_cascades_to_its_data_only(raw_tables: RawTables) -> None:
    await raw_tables.execute("DELETE FROM devices WHERE realm = 'doomed'")

    counts = await _row_counts(raw_tables, "doomed")
    assert {table for table, count in counts.items() if count} == {
        "interfaces",
        "trigger_policies",
        "triggers",
        "simple_triggers",
        "trigger_deliveries",
        "trigger_queue_leases",
    }


@pytest.mark.usefixtures("two_realms")
async def test_a_policy_in_use_cannot_be_deleted(raw_tables: RawTables) -> None:
    with pytest.raises(raw_tables.integrity_error, match=r"(?i)foreign key"):
        await raw_tables.execute("DELETE FROM trigger_policies WHERE realm = 'doomed'")


@pytest.mark.usefixtures("two_realms")
async def test_aliases_are_unique_within_a_realm_only(raw_tables: RawTables) -> None:
    # Both realms already hold the alias "alias" (see realm_rows).
    other_device = bytes(range(1, 17))
    await insert(raw_tables, "devices", {"realm": "doomed", "device_id": other_device})

    with pytest.raises(raw_tables.integrity_error, match=r"(?i)unique"):
        await insert(
            raw_tables,
            "device_aliases",
            {"realm": "doomed", "device_id": other_device, "tag": "other tag", "alias": "alias"},
        )


@pytest.mark.usefixtures("two_realms")
async def test_a_device_introspects_one_major_per_interface(raw_tables: RawTables) -> None:
    def declared(in_introspection: bool) -> dict[str, object]:
        return {
            "realm": "doomed",
            "device_id": DEVICE,
            "interface_name": "org.example.A",
            "major": 1,
            "minor": 0,
            "in_introspection": in_introspection,
        }

    with pytest.raises(raw_tables.integrity_error, match=r"(?i)unique"):
        await insert(raw_tables, "device_interfaces", declared(True))
    await insert(raw_tables, "device_interfaces", declared(False))  # a previous interface
