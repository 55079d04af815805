"""Trigger delivery policies in PostgreSQL: one row per policy holding its rendered document.

`policy_to_json` renders every field, so the document is the whole policy and `parse_policy`
rebuilds it exactly. Triggers reference policies through a foreign key, and that key decides
whether a policy is in use: a trigger installed while the policy is being deleted is seen by
the check, where a query run before the DELETE could miss it.
"""

from __future__ import annotations

import asyncpg

from astraea.core.trigger_policies import Policy, parse_policy, policy_to_json
from astraea.storage.base import AlreadyExists, NotFound, PolicyInUse
from astraea.storage.postgres.codec import from_json, to_json
from astraea.storage.postgres.connection import Database

_INSERT = """
INSERT INTO trigger_policies (realm, name, document) VALUES ($1, $2, $3)
ON CONFLICT (realm, name) DO NOTHING
"""


class PostgresPolicyRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def install(self, realm: str, policy: Policy) -> None:
        document = to_json(policy_to_json(policy))
        try:
            inserted = await self._database.execute(_INSERT, realm, policy.name, document)
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"realm {realm!r} does not exist") from None
        if not inserted:
            raise AlreadyExists(f"trigger policy {policy.name!r} already exists")

    async def get(self, realm: str, name: str) -> Policy | None:
        document = await self._database.fetchval(
            "SELECT document FROM trigger_policies WHERE realm = $1 AND name = $2", realm, name
        )
        return None if document is None else parse_policy(from_json(document))

    async def list_names(self, realm: str) -> list[str]:
        rows = await self._database.fetch(
            "SELECT name FROM trigger_policies WHERE realm = $1 ORDER BY name", realm
        )
        return [row["name"] for row in rows]

    async def delete(self, realm: str, name: str) -> bool:
        try:
            deleted = await self._database.execute(
                "DELETE FROM trigger_policies WHERE realm = $1 AND name = $2", realm, name
            )
        except asyncpg.ForeignKeyViolationError:
            raise PolicyInUse(f"trigger policy {name!r} is used by triggers") from None
        return deleted > 0
