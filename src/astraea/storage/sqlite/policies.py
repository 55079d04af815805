"""Trigger delivery policies in SQLite: one row per policy holding its rendered document.

`policy_to_json` renders every field, so the document is the whole policy and `parse_policy`
rebuilds it exactly. Triggers reference policies through a foreign key; deleting checks for
users first so the caller gets `PolicyInUse` rather than a constraint failure.
"""

from __future__ import annotations

import orjson

from astraea.core.trigger_policies import Policy, parse_policy, policy_to_json
from astraea.storage.base import AlreadyExists, NotFound, PolicyInUse
from astraea.storage.sqlite.connection import Database

_INSERT = """
INSERT INTO trigger_policies (realm, name, document) VALUES (?, ?, ?)
ON CONFLICT (realm, name) DO NOTHING
"""


class SqlitePolicyRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, policy: Policy) -> None:
        document = orjson.dumps(policy_to_json(policy)).decode()
        async with self._database.transaction() as tx:
            if await tx.fetch_one("SELECT 1 FROM realms WHERE name = ?", (realm,)) is None:
                raise NotFound(f"realm {realm!r} does not exist")
            if not await tx.execute(_INSERT, (realm, policy.name, document)):
                raise AlreadyExists(f"trigger policy {policy.name!r} already exists")

    async def get(self, realm: str, name: str) -> Policy | None:
        row = await self._database.fetch_one(
            "SELECT document FROM trigger_policies WHERE realm = ? AND name = ?", (realm, name)
        )
        return None if row is None else parse_policy(orjson.loads(row["document"]))

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch_all(
            "SELECT name FROM trigger_policies WHERE realm = ? ORDER BY name", (realm,)
        )
        return [row["name"] for row in rows]

    async def delete(self, realm: str, name: str) -> bool:
        async with self._database.transaction() as tx:
            used = await tx.fetch_one(
                "SELECT 1 FROM triggers WHERE realm = ? AND policy = ? LIMIT 1", (realm, name)
            )
            if used is not None:
                raise PolicyInUse(f"trigger policy {name!r} is used by triggers")
            deleted = await tx.execute(
                "DELETE FROM trigger_policies WHERE realm = ? AND name = ?", (realm, name)
            )
        return deleted > 0
