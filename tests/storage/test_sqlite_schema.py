"""The initial schema's promises that no repository exercises yet: cascades and uniqueness."""

from __future__ import annotations

import sqlite3

import pytest

from astraea.storage.base import Realm, Storage

DEVICE = bytes(range(16))
TRIGGER_ID = bytes(range(100, 116))
SIMPLE_TRIGGER_ID = bytes(range(200, 216))

# One row for every table a realm owns, in an order that satisfies the foreign keys.
REALM_ROWS: dict[str, str] = {
    "interfaces": "INSERT INTO interfaces VALUES"
    " (:realm, 'org.example.A', 0, 1, 'org.example.a', 'properties', 'device', 'individual',"
    " '{}')",
    "devices": "INSERT INTO devices (realm, device_id) VALUES (:realm, :device)",
    "device_deletions": "INSERT INTO device_deletions (realm, device_id, started_at)"
    " VALUES (:realm, :device, 1)",
    "device_interfaces": "INSERT INTO device_interfaces"
    " (realm, device_id, interface_name, major, minor, in_introspection)"
    " VALUES (:realm, :device, 'org.example.A', 0, 1, 1)",
    "device_aliases": "INSERT INTO device_aliases VALUES (:realm, :device, 'name', 'alias')",
    "device_attributes": "INSERT INTO device_attributes VALUES (:realm, :device, 'k', 'v')",
    "group_members": "INSERT INTO group_members VALUES (:realm, :device, 'group', 1)",
    "individual_properties": "INSERT INTO individual_properties"
    " VALUES (:realm, :device, 'org.example.A', 0, '/a', x'00', 1)",
    "individual_datastreams": "INSERT INTO individual_datastreams"
    " VALUES (:realm, :device, 'org.example.B', 0, '/a', 1, 2, x'00', NULL)",
    "object_datastreams": "INSERT INTO object_datastreams"
    " VALUES (:realm, :device, 'org.example.C', 0, '/a', 1, 2, x'00', 3)",
    "datastream_paths": "INSERT INTO datastream_paths"
    " VALUES (:realm, :device, 'org.example.B', 0, '/a', 1, NULL)",
    "trigger_policies": "INSERT INTO trigger_policies VALUES (:realm, 'policy', '{}')",
    "triggers": "INSERT INTO triggers VALUES (:realm, 'trigger', :trigger, 'policy', '{}')",
    "simple_triggers": "INSERT INTO simple_triggers"
    " (realm, trigger_name, position, simple_trigger_id, kind, event, device_id)"
    " VALUES (:realm, 'trigger', 0, :simple_trigger, 'device_trigger', 'device_connected',"
    " :device)",
    "trigger_deliveries": "INSERT INTO trigger_deliveries"
    " (realm, policy, device_id, trigger_id, simple_trigger_id, event_type, event, enqueued_at,"
    " next_attempt_at)"
    " VALUES (:realm, 'policy', :device, :trigger, :simple_trigger, 'device_connected_event',"
    " x'00', 1, 1)",
}


def _populate(raw_sql: sqlite3.Connection, realm: str, salt: int) -> None:
    """`salt` keeps globally unique ids distinct between realms."""
    params = {
        "realm": realm,
        "device": DEVICE,
        "trigger": bytes([salt]) + TRIGGER_ID[1:],
        "simple_trigger": bytes([salt]) + SIMPLE_TRIGGER_ID[1:],
    }
    for statement in REALM_ROWS.values():
        raw_sql.execute(statement, params)


def _row_counts(raw_sql: sqlite3.Connection, realm: str) -> dict[str, int]:
    return {
        table: raw_sql.execute(
            f"SELECT count(*) FROM {table} WHERE realm = ?", (realm,)
        ).fetchone()[0]
        for table in REALM_ROWS
    }


@pytest.fixture
async def two_realms(storage: Storage, raw_sql: sqlite3.Connection) -> None:
    for salt, name in enumerate(("doomed", "kept")):
        await storage.realms.create(Realm(name=name, jwt_public_key_pem="pem"))
        _populate(raw_sql, name, salt)


def test_every_realm_owned_table_is_covered(raw_sql: sqlite3.Connection) -> None:
    tables = {
        name for (name,) in raw_sql.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    assert tables - {"realms", "schema_version", "sqlite_sequence"} == set(REALM_ROWS)


@pytest.mark.usefixtures("two_realms")
async def test_realm_delete_cascades_to_every_table(
    storage: Storage, raw_sql: sqlite3.Connection
) -> None:
    assert await storage.realms.delete("doomed") is True

    assert set(_row_counts(raw_sql, "doomed").values()) == {0}
    assert set(_row_counts(raw_sql, "kept").values()) == {1}


@pytest.mark.usefixtures("two_realms")
def test_device_delete_cascades_to_its_data_only(raw_sql: sqlite3.Connection) -> None:
    raw_sql.execute("DELETE FROM devices WHERE realm = 'doomed'")

    survivors = {table for table, count in _row_counts(raw_sql, "doomed").items() if count}
    assert survivors == {
        "interfaces",
        "trigger_policies",
        "triggers",
        "simple_triggers",
        "trigger_deliveries",
    }


@pytest.mark.usefixtures("two_realms")
def test_a_policy_in_use_cannot_be_deleted(raw_sql: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        raw_sql.execute("DELETE FROM trigger_policies WHERE realm = 'doomed'")


@pytest.mark.usefixtures("two_realms")
def test_aliases_are_unique_within_a_realm_only(raw_sql: sqlite3.Connection) -> None:
    # Both realms already hold the alias "alias" (see REALM_ROWS).
    other_device = bytes(range(1, 17))
    raw_sql.execute("INSERT INTO devices (realm, device_id) VALUES ('doomed', ?)", (other_device,))

    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw_sql.execute(
            "INSERT INTO device_aliases VALUES ('doomed', ?, 'other tag', 'alias')", (other_device,)
        )


@pytest.mark.usefixtures("two_realms")
def test_a_device_introspects_one_major_per_interface(raw_sql: sqlite3.Connection) -> None:
    insert = (
        "INSERT INTO device_interfaces"
        " (realm, device_id, interface_name, major, minor, in_introspection)"
        " VALUES ('doomed', ?, 'org.example.A', 1, 0, ?)"
    )
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw_sql.execute(insert, (DEVICE, 1))
    raw_sql.execute(insert, (DEVICE, 0))  # a previous interface may share the name


@pytest.mark.usefixtures("two_realms")
def test_strict_tables_refuse_values_of_the_wrong_type(raw_sql: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="cannot store TEXT value in INTEGER"):
        raw_sql.execute(
            "UPDATE devices SET last_connection = '2024-01-01T00:00:00Z' WHERE realm = 'kept'"
        )
