"""NodeRepository contract: heartbeats, and each dead node handed to one caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from astraea.storage.base import Storage

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


async def test_dead_nodes_are_claimed_once(storage: Storage) -> None:
    await storage.nodes.heartbeat("old", T0)
    await storage.nodes.heartbeat("young", T0 + timedelta(seconds=20))
    await storage.nodes.heartbeat("revived", T0)
    await storage.nodes.heartbeat("revived", T0 + timedelta(seconds=30))

    claims = await asyncio.gather(
        *(storage.nodes.claim_dead(T0 + timedelta(seconds=10)) for _ in range(5))
    )
    assert sorted(name for claim in claims for name in claim) == ["old"]
    assert await storage.nodes.claim_dead(T0 + timedelta(seconds=25)) == ["young"]
    await storage.nodes.heartbeat("old", T0 + timedelta(seconds=40))  # back to life
    assert await storage.nodes.claim_dead(T0 + timedelta(seconds=35)) == ["revived"]
    assert await storage.nodes.claim_dead(T0 + timedelta(seconds=35)) == []
