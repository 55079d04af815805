"""Triggers in SQLite: the rendered document plus one row per simple trigger.

`triggers.document` is `Trigger.to_json()`, the whole definition; `simple_triggers` repeats the
subject of each simple trigger (event, interface, device, group) for the queries that must not
parse documents, such as whether an interface is used. Loading re-validates the document with
`parse_trigger`, which returns the same trigger for every rendered one.

`realms.triggers_version` changes in every transaction that installs or deletes a trigger (see
migration 0002), so readers poll one primary-key row to learn that a realm's triggers changed.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Iterable
from itertools import groupby

import orjson

from astraea.core.device_id import decode_device_id
from astraea.core.triggers import (
    DataTrigger,
    InstalledTrigger,
    SimpleTrigger,
    Trigger,
    parse_trigger,
)
from astraea.storage.base import AlreadyExists, NotFound, PolicyNotFound
from astraea.storage.sqlite.connection import Database, Executor

_VERSION_BITS = 63  # a positive SQLite INTEGER

_INSERT_TRIGGER = """
INSERT INTO triggers (realm, name, trigger_id, policy, document) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (realm, name) DO NOTHING
"""

_INSERT_SIMPLE_TRIGGER = """
INSERT INTO simple_triggers (
    realm, trigger_name, position, simple_trigger_id, kind, event, interface_name,
    interface_major, device_id, group_name
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# Every trigger of the selection with its simple trigger ids, in one statement so that a
# concurrent delete cannot split a trigger from its ids.
_SELECT_WITH_IDS = """
SELECT t.name, t.trigger_id, t.document, s.simple_trigger_id
FROM triggers t JOIN simple_triggers s ON s.realm = t.realm AND s.trigger_name = t.name
WHERE t.realm = ? {condition}
ORDER BY t.name, s.position
"""


class SqliteTriggerRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, trigger: Trigger) -> InstalledTrigger:
        installed = InstalledTrigger(
            trigger=trigger,
            trigger_id=uuid.uuid4(),
            simple_trigger_ids=tuple(uuid.uuid4() for _ in trigger.simple_triggers),
        )
        async with self._database.transaction() as tx:
            if await tx.fetch_one("SELECT 1 FROM realms WHERE name = ?", (realm,)) is None:
                raise NotFound(f"realm {realm!r} does not exist")
            if trigger.policy is not None and not await _policy_exists(tx, realm, trigger.policy):
                raise PolicyNotFound(f"trigger policy {trigger.policy!r} does not exist")
            document = orjson.dumps(trigger.to_json()).decode()
            params = (realm, trigger.name, installed.trigger_id.bytes, trigger.policy, document)
            if not await tx.execute(_INSERT_TRIGGER, params):
                raise AlreadyExists(f"trigger {trigger.name!r} already exists")
            for position, simple in enumerate(trigger.simple_triggers):
                simple_id = installed.simple_trigger_ids[position]
                await tx.execute(
                    _INSERT_SIMPLE_TRIGGER,
                    (realm, trigger.name, position, simple_id.bytes, *_subject(simple)),
                )
            await _change_version(tx, realm)
        return installed

    async def get(self, realm: str, name: str) -> InstalledTrigger | None:
        rows = await self._database.fetch_all(
            _SELECT_WITH_IDS.format(condition="AND t.name = ?"), (realm, name)
        )
        found = _installed(realm, rows)
        return found[0] if found else None

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch_all(
            "SELECT name FROM triggers WHERE realm = ? ORDER BY name", (realm,)
        )
        return [row["name"] for row in rows]

    async def list_all(self, realm: str) -> list[InstalledTrigger]:
        rows = await self._database.fetch_all(_SELECT_WITH_IDS.format(condition=""), (realm,))
        return _installed(realm, rows)

    async def delete(self, realm: str, name: str) -> bool:
        async with self._database.transaction() as tx:
            deleted = await tx.execute(
                "DELETE FROM triggers WHERE realm = ? AND name = ?", (realm, name)
            )
            if deleted:
                await _change_version(tx, realm)
        return deleted > 0

    async def is_interface_used_by_triggers(self, realm: str, name: str, major: int) -> bool:
        row = await self._database.fetch_one(
            "SELECT EXISTS (SELECT 1 FROM simple_triggers"
            " WHERE realm = ? AND interface_name = ? AND interface_major = ?)",
            (realm, name, major),
        )
        return row is not None and bool(row[0])

    async def triggers_version(self, realm: str) -> int:
        row = await self._database.fetch_one(
            "SELECT triggers_version FROM realms WHERE name = ?", (realm,)
        )
        return 0 if row is None else int(row[0])


async def _policy_exists(tx: Executor, realm: str, policy: str) -> bool:
    row = await tx.fetch_one(
        "SELECT 1 FROM trigger_policies WHERE realm = ? AND name = ?", (realm, policy)
    )
    return row is not None


async def _change_version(tx: Executor, realm: str) -> None:
    await tx.execute(
        "UPDATE realms SET triggers_version = ? WHERE name = ?",
        (secrets.randbits(_VERSION_BITS), realm),
    )


def _subject(simple: SimpleTrigger) -> tuple[object, ...]:
    """kind, event, interface_name, interface_major, device_id, group_name columns."""
    kind = "data_trigger" if isinstance(simple, DataTrigger) else "device_trigger"
    device_id = None if simple.device_id is None else decode_device_id(simple.device_id)
    return (
        kind,
        simple.on.value,
        simple.interface_name,
        simple.interface_major,
        device_id,
        simple.group_name,
    )


def _installed(realm: str, rows: Iterable[sqlite3.Row]) -> list[InstalledTrigger]:
    """Folds the joined rows, one per simple trigger and grouped by trigger, into triggers."""
    return [_trigger(realm, list(group)) for _, group in groupby(rows, key=lambda r: r["name"])]


def _trigger(realm: str, rows: list[sqlite3.Row]) -> InstalledTrigger:
    first = rows[0]
    return InstalledTrigger(
        trigger=parse_trigger(orjson.loads(first["document"]), realm=realm),
        trigger_id=uuid.UUID(bytes=first["trigger_id"]),
        simple_trigger_ids=tuple(uuid.UUID(bytes=row["simple_trigger_id"]) for row in rows),
    )
