"""Transport node heartbeats in SQLite."""

from __future__ import annotations

from datetime import datetime

from astraea.storage.sqlite.connection import Database
from astraea.storage.sqlite.devices import _micros


class SqliteNodeRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def heartbeat(self, node: str, now: datetime) -> None:
        await self._database.execute(
            "INSERT INTO transport_nodes (name, last_seen) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen",
            (node, _micros(now)),
        )

    async def claim_dead(self, last_seen_before: datetime) -> list[str]:
        """DELETE ... RETURNING: of two processes noticing together, one deletes the row."""
        async with self._database.transaction() as tx:
            rows = await tx.fetch_all(
                "DELETE FROM transport_nodes WHERE last_seen < ? RETURNING name",
                (_micros(last_seen_before),),
            )
        return sorted(row["name"] for row in rows)
