"""Triggers in PostgreSQL: the rendered document plus one row per simple trigger.

`triggers.document` is `Trigger.to_json()`, the whole definition; `simple_triggers` repeats the
subject of each simple trigger (event, interface, device, group) for the queries that must not
parse documents, such as whether an interface is used. Loading re-validates the document with
`parse_trigger`, which returns the same trigger for every rendered one.

`realms.triggers_version` changes in every transaction that installs or deletes a trigger, so
readers poll one primary-key row to learn that a realm's triggers changed. Those transactions
start by locking the realm row, which serialises them per realm, and an install locks the
policy row it names (FOR KEY SHARE) so the policy cannot be deleted before the trigger is in.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from itertools import groupby

import asyncpg

from astraea.core.device_id import decode_device_id
from astraea.core.triggers import (
    DataTrigger,
    InstalledTrigger,
    SimpleTrigger,
    Trigger,
    parse_trigger,
)
from astraea.storage.base import AlreadyExists, NotFound, PolicyNotFound
from astraea.storage.postgres.codec import from_json, to_json
from astraea.storage.postgres.connection import Connection, Database, changed

_VERSION_BITS = 63  # a positive bigint

_LOCK_REALM = "SELECT 1 FROM realms WHERE name = $1 FOR NO KEY UPDATE"

_LOCK_POLICY = "SELECT 1 FROM trigger_policies WHERE realm = $1 AND name = $2 FOR KEY SHARE"

_INSERT_TRIGGER = """
INSERT INTO triggers (realm, name, trigger_id, policy, document) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (realm, name) DO NOTHING
"""

_INSERT_SIMPLE_TRIGGER = """
INSERT INTO simple_triggers (
    realm, trigger_name, position, simple_trigger_id, kind, event, interface_name,
    interface_major, device_id, group_name
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

# Every trigger of the selection with its simple trigger ids, in one statement so that a
# concurrent delete cannot split a trigger from its ids.
_SELECT_WITH_IDS = """
SELECT t.name, t.trigger_id, t.document, s.simple_trigger_id
FROM triggers t JOIN simple_triggers s ON s.realm = t.realm AND s.trigger_name = t.name
WHERE t.realm = $1 {condition}
ORDER BY t.name, s.position
"""

_CHANGE_VERSION = "UPDATE realms SET triggers_version = $2 WHERE name = $1"


class PostgresTriggerRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, trigger: Trigger) -> InstalledTrigger:
        installed = InstalledTrigger(
            trigger=trigger,
            trigger_id=uuid.uuid4(),
            simple_trigger_ids=tuple(uuid.uuid4() for _ in trigger.simple_triggers),
        )
        async with self._database.transaction() as connection:
            if await connection.fetchval(_LOCK_REALM, realm) is None:
                raise NotFound(f"realm {realm!r} does not exist")
            if (
                trigger.policy is not None
                and await connection.fetchval(_LOCK_POLICY, realm, trigger.policy) is None
            ):
                raise PolicyNotFound(f"trigger policy {trigger.policy!r} does not exist")
            document = to_json(trigger.to_json())
            params = (realm, trigger.name, installed.trigger_id.bytes, trigger.policy, document)
            if not changed(await connection.execute(_INSERT_TRIGGER, *params)):
                raise AlreadyExists(f"trigger {trigger.name!r} already exists")
            await connection.executemany(
                _INSERT_SIMPLE_TRIGGER,
                [
                    (realm, trigger.name, position, simple_id.bytes, *_subject(simple))
                    for position, (simple, simple_id) in enumerate(
                        zip(trigger.simple_triggers, installed.simple_trigger_ids, strict=True)
                    )
                ],
            )
            await _change_version(connection, realm)
        return installed

    async def get(self, realm: str, name: str) -> InstalledTrigger | None:
        rows = await self._database.fetch(
            _SELECT_WITH_IDS.format(condition="AND t.name = $2"), realm, name
        )
        found = _installed(realm, rows)
        return found[0] if found else None

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch(
            "SELECT name FROM triggers WHERE realm = $1 ORDER BY name", realm
        )
        return [row["name"] for row in rows]

    async def list_all(self, realm: str) -> list[InstalledTrigger]:
        rows = await self._database.fetch(_SELECT_WITH_IDS.format(condition=""), realm)
        return _installed(realm, rows)

    async def delete(self, realm: str, name: str) -> bool:
        async with self._database.transaction() as connection:
            if await connection.fetchval(_LOCK_REALM, realm) is None:
                return False
            deleted = await connection.execute(
                "DELETE FROM triggers WHERE realm = $1 AND name = $2", realm, name
            )
            if not changed(deleted):
                return False
            await _change_version(connection, realm)
        return True

    async def is_interface_used_by_triggers(self, realm: str, name: str, major: int) -> bool:
        used: bool = await self._database.fetchval(
            "SELECT EXISTS (SELECT 1 FROM simple_triggers"
            " WHERE realm = $1 AND interface_name = $2 AND interface_major = $3)",
            realm,
            name,
            major,
        )
        return used

    async def triggers_version(self, realm: str) -> int:
        version = await self._database.fetchval(
            "SELECT triggers_version FROM realms WHERE name = $1", realm
        )
        return 0 if version is None else int(version)


async def _change_version(connection: Connection, realm: str) -> None:
    await connection.execute(_CHANGE_VERSION, realm, secrets.randbits(_VERSION_BITS))


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


def _installed(realm: str, rows: Iterable[asyncpg.Record]) -> list[InstalledTrigger]:
    """Folds the joined rows, one per simple trigger and grouped by trigger, into triggers."""
    return [_trigger(realm, list(group)) for _, group in groupby(rows, key=lambda r: r["name"])]


def _trigger(realm: str, rows: list[asyncpg.Record]) -> InstalledTrigger:
    first = rows[0]
    return InstalledTrigger(
        trigger=parse_trigger(from_json(first["document"]), realm=realm),
        trigger_id=uuid.UUID(bytes=first["trigger_id"]),
        simple_trigger_ids=tuple(uuid.UUID(bytes=row["simple_trigger_id"]) for row in rows),
    )
