"""Transport node heartbeats in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from astraea.storage.postgres.codec import micros
from astraea.storage.postgres.connection import Database


class PostgresNodeRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def heartbeat(self, node: str, now: datetime) -> None:
        await self._database.execute(
            "INSERT INTO transport_nodes (name, last_seen) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen",
            node,
            micros(now),
        )

    async def claim_dead(self, last_seen_before: datetime) -> list[str]:
        """DELETE ... RETURNING: of two processes noticing together, one deletes each row."""
        rows = await self._database.fetch(
            "DELETE FROM transport_nodes WHERE last_seen < $1 RETURNING name",
            micros(last_seen_before),
        )
        return sorted(row["name"] for row in rows)
