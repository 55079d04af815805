"""Trigger delivery queues in SQLite: rows of `trigger_deliveries`, ordered by `seq`.

`seq` is AUTOINCREMENT, so it never goes backwards or gets reused and doubles as the identity
of a delivery while the engine attempts it. Trimming and expiring delete with RETURNING in one
statement, so the engine learns exactly which deliveries went (it counts them per trigger).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Sequence
from functools import partial

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.storage.base import NewDelivery, QueuedDelivery
from astraea.storage.sqlite.connection import Database

_INSERT = """
INSERT INTO trigger_deliveries (
    realm, policy, device_id, trigger_id, simple_trigger_id, event_type, event,
    enqueued_at, expires_at, next_attempt_at
)
SELECT :realm, :policy, :device_id, :trigger_id, :simple_trigger_id, :event_type, :event,
    :enqueued_at, :expires_at, :enqueued_at
WHERE EXISTS (SELECT 1 FROM realms WHERE name = :realm)
RETURNING seq
"""

_FETCH = """
SELECT seq, device_id, trigger_id, event, enqueued_at, expires_at, attempts, next_attempt_at
FROM trigger_deliveries
WHERE realm = ? AND policy = ? AND seq > ? AND seq NOT IN ({seqs})
ORDER BY seq
LIMIT ?
"""

_DELETE = "DELETE FROM trigger_deliveries WHERE seq = ?"

# Taken when free, expired or already the owner's; the WHERE of an upsert leaves a live lease
# of someone else untouched (0 rows changed).
_LEASE = """
INSERT INTO trigger_queue_leases (realm, policy, owner, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (realm, policy) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE trigger_queue_leases.owner = ? OR trigger_queue_leases.expires_at <= ?
"""

_TRIM = """
DELETE FROM trigger_deliveries WHERE seq IN (
    SELECT seq FROM trigger_deliveries
    WHERE realm = ? AND policy = ? AND seq NOT IN ({seqs})
    ORDER BY seq
    LIMIT ?
)
RETURNING seq, trigger_id
"""

_COUNT = """
SELECT count(*) FROM trigger_deliveries WHERE realm = ? AND policy = ? AND seq NOT IN ({seqs})
"""

_EXPIRE = """
DELETE FROM trigger_deliveries
WHERE expires_at <= ? AND realm = ? AND policy = ? AND seq NOT IN ({seqs})
RETURNING seq, trigger_id
"""


class SqliteDeliveryQueueRepository:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Group commit of removals: every delivery ends with one, and a commit (an fsync)
        # each would cap throughput at the disk's sync rate.
        self._removals: list[tuple[int, asyncio.Future[None]]] = []
        self._remover: asyncio.Task[None] | None = None

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> list[QueuedDelivery | None]:
        return await self._database.run(partial(store_deliveries, deliveries))

    async def queues(self) -> list[tuple[str, str]]:
        rows = await self._database.fetch_all(
            "SELECT DISTINCT realm, policy FROM trigger_deliveries ORDER BY realm, policy"
        )
        return [(row["realm"], row["policy"]) for row in rows]

    async def fetch(
        self,
        realm: str,
        policy: str,
        *,
        limit: int,
        after: int = 0,
        skip_seqs: Sequence[int] = (),
    ) -> list[QueuedDelivery]:
        sql = _FETCH.format(seqs=_placeholders(skip_seqs))
        rows = await self._database.fetch_all(sql, (realm, policy, after, *skip_seqs, limit))
        return [_queued(row) for row in rows]

    async def record_failure(self, seq: int, attempts: int, next_attempt_at: int) -> None:
        await self._database.execute(
            "UPDATE trigger_deliveries SET attempts = ?, next_attempt_at = ? WHERE seq = ?",
            (attempts, next_attempt_at, seq),
        )

    async def remove(self, seq: int) -> None:
        """Returns once the removal is committed, together with those requested meanwhile.

        A task of its own commits the batches: were the first caller to run the loop, it
        would be held for as long as removals keep coming, and with it its delivery slot.
        """
        done = asyncio.get_running_loop().create_future()
        self._removals.append((seq, done))
        if self._remover is None or self._remover.done():
            self._remover = asyncio.create_task(self._remove_batches())
        await done

    async def _remove_batches(self) -> None:
        while self._removals:
            batch, self._removals = self._removals, []
            try:
                await self._database.run(partial(_delete, [(seq,) for seq, _ in batch]))
            except Exception as error:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(error)
            else:
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(None)

    async def trim(
        self, realm: str, policy: str, *, capacity: int, skip_seqs: Sequence[int] = ()
    ) -> list[tuple[int, uuid.UUID]]:
        seqs = _placeholders(skip_seqs)
        async with self._database.transaction() as tx:
            row = await tx.fetch_one(_COUNT.format(seqs=seqs), (realm, policy, *skip_seqs))
            excess = 0 if row is None else int(row[0]) - capacity
            if excess <= 0:
                return []
            rows = await tx.fetch_all(_TRIM.format(seqs=seqs), (realm, policy, *skip_seqs, excess))
        return _removed(rows)

    async def drop_expired(
        self, realm: str, policy: str, *, now: int, skip_seqs: Sequence[int] = ()
    ) -> list[tuple[int, uuid.UUID]]:
        sql = _EXPIRE.format(seqs=_placeholders(skip_seqs))
        async with self._database.transaction() as tx:
            rows = await tx.fetch_all(sql, (now, realm, policy, *skip_seqs))
        return _removed(rows)

    async def lease(self, realm: str, policy: str, owner: str, *, now: int, ttl: int) -> bool:
        async with self._database.transaction() as tx:
            if await tx.fetch_one("SELECT 1 FROM realms WHERE name = ?", (realm,)) is None:
                return False
            taken = await tx.execute(_LEASE, (realm, policy, owner, now + ttl, owner, now))
        return taken > 0

    async def release_lease(self, realm: str, policy: str, owner: str) -> None:
        await self._database.execute(
            "DELETE FROM trigger_queue_leases WHERE realm = ? AND policy = ? AND owner = ?",
            (realm, policy, owner),
        )


def _placeholders(items: Sequence[object]) -> str:
    # `NOT IN ()` is valid SQLite and excludes nothing.
    return ", ".join("?" * len(items))


def _params(delivery: NewDelivery) -> dict[str, object]:
    return {
        "realm": delivery.realm,
        "policy": delivery.policy,
        "device_id": decode_device_id(delivery.device_id),
        "trigger_id": delivery.trigger_id.bytes,
        "simple_trigger_id": delivery.simple_trigger_id.bytes,
        "event_type": delivery.event_type,
        "event": delivery.event,
        "enqueued_at": delivery.enqueued_at,
        "expires_at": delivery.expires_at,
    }


def store_deliveries(
    deliveries: Sequence[NewDelivery], connection: sqlite3.Connection
) -> list[QueuedDelivery | None]:
    """Inserts the deliveries on the database thread, inside the caller's transaction."""
    return [_stored(connection, delivery) for delivery in deliveries]


def _stored(connection: sqlite3.Connection, delivery: NewDelivery) -> QueuedDelivery | None:
    """Inserts one delivery; None when its realm is gone."""
    rows = connection.execute(_INSERT, _params(delivery)).fetchall()
    if not rows:
        return None
    return QueuedDelivery(
        seq=rows[0][0],
        device_id=delivery.device_id,
        trigger_id=delivery.trigger_id,
        event=delivery.event,
        enqueued_at=delivery.enqueued_at,
        expires_at=delivery.expires_at,
        attempts=0,
        next_attempt_at=delivery.enqueued_at,
    )


def _delete(seqs: list[tuple[int]], connection: sqlite3.Connection) -> None:
    connection.executemany(_DELETE, seqs)


def _removed(rows: Sequence[sqlite3.Row]) -> list[tuple[int, uuid.UUID]]:
    return [(row["seq"], uuid.UUID(bytes=row["trigger_id"])) for row in rows]


def _queued(row: sqlite3.Row) -> QueuedDelivery:
    return QueuedDelivery(
        seq=row["seq"],
        device_id=encode_device_id(row["device_id"]),
        trigger_id=uuid.UUID(bytes=row["trigger_id"]),
        event=row["event"],
        enqueued_at=row["enqueued_at"],
        expires_at=row["expires_at"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
    )
