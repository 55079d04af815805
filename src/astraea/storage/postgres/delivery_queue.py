"""Trigger delivery queues in PostgreSQL: rows of `trigger_deliveries`, ordered by `seq`.

`seq` comes from an identity sequence, so it never goes backwards or gets reused and doubles as
the identity of a delivery while the engine attempts it. Engines read a queue on from the
highest `seq` they have seen, which is only safe if no smaller `seq` commits later: with
several connections it could, so `enqueue` runs under a transaction-level advisory lock that
makes enqueuing transactions (of every process) take and commit their `seq`s one after the
other. It draws the batch's `seq`s first and sorts them, so the batch is stored in order
whatever order the server evaluates a multi-row INSERT in.

Trimming and expiring delete with RETURNING in one statement, so the engine learns exactly
which deliveries went (it counts them per trigger).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg

from astraea.core.device_id import decode_device_id, encode_device_id
from astraea.storage.base import NewDelivery, QueuedDelivery
from astraea.storage.postgres.connection import Connection, Database, as_columns

# The first key of the enqueue lock (the second is the schema's hash); see the docstring.
ENQUEUE_LOCK = 0x74726967  # "trig"

_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))"

# Locked (FOR KEY SHARE) so that they cannot be deleted before the deliveries are in.
_LIVE_REALMS = "SELECT name FROM realms WHERE name = ANY($1::text[]) FOR KEY SHARE"

_NEXT_SEQS = """
SELECT nextval(pg_get_serial_sequence('trigger_deliveries', 'seq'))
FROM generate_series(1, $1)
"""

_INSERT = """
INSERT INTO trigger_deliveries (
    seq, realm, policy, device_id, trigger_id, simple_trigger_id, event_type, event,
    enqueued_at, expires_at, next_attempt_at
) OVERRIDING SYSTEM VALUE
SELECT seq, realm, policy, device_id, trigger_id, simple_trigger_id, event_type, event,
    enqueued_at, expires_at, enqueued_at
FROM unnest(
    $1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[],
    $8::bytea[], $9::bigint[], $10::bigint[]
) AS u (
    seq, realm, policy, device_id, trigger_id, simple_trigger_id, event_type, event,
    enqueued_at, expires_at
)
"""

_FETCH = """
SELECT seq, device_id, trigger_id, event, enqueued_at, expires_at, attempts, next_attempt_at
FROM trigger_deliveries
WHERE realm = $1 AND policy = $2 AND seq > $3 AND seq <> ALL($4::bigint[])
ORDER BY seq
LIMIT $5
"""

_WAITING = "realm = $1 AND policy = $2 AND seq <> ALL($3::bigint[])"

_TRIM = f"""
WITH removed AS (
    DELETE FROM trigger_deliveries WHERE seq IN (
        SELECT seq FROM trigger_deliveries WHERE {_WAITING}
        ORDER BY seq
        LIMIT greatest((SELECT count(*) FROM trigger_deliveries WHERE {_WAITING}) - $4, 0)
    )
    RETURNING seq, trigger_id
)
SELECT seq, trigger_id FROM removed ORDER BY seq
"""

_EXPIRE = f"""
WITH removed AS (
    DELETE FROM trigger_deliveries WHERE {_WAITING} AND expires_at <= $4
    RETURNING seq, trigger_id
)
SELECT seq, trigger_id FROM removed ORDER BY seq
"""


async def store_deliveries(
    connection: Connection, deliveries: Sequence[NewDelivery]
) -> list[QueuedDelivery | None]:
    """Inserts the deliveries inside the caller's transaction (see the module docstring for
    the lock), skipping those of realms that are gone."""
    if not deliveries:
        return []
    await connection.execute(_LOCK, ENQUEUE_LOCK)
    realms = await connection.fetch(_LIVE_REALMS, list({d.realm for d in deliveries}))
    live = {row["name"] for row in realms}
    kept = [delivery for delivery in deliveries if delivery.realm in live]
    if not kept:
        return [None] * len(deliveries)
    drawn = await connection.fetch(_NEXT_SEQS, len(kept))
    seqs = sorted(row[0] for row in drawn)
    rows = [_row(seq, delivery) for seq, delivery in zip(seqs, kept, strict=True)]
    await connection.execute(_INSERT, *as_columns(rows, 10))
    stored = iter(seqs)
    return [_queued_new(next(stored), d) if d.realm in live else None for d in deliveries]


_LEASE = """
INSERT INTO trigger_queue_leases AS l (realm, policy, owner, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (realm, policy) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= $5
RETURNING 1
"""


class PostgresDeliveryQueueRepository:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Group commit of removals: every delivery ends with one, and a commit (a WAL flush)
        # each would cap throughput at the disk's sync rate times the pool size.
        self._removals: list[tuple[int, asyncio.Future[None]]] = []
        self._remover: asyncio.Task[None] | None = None

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> list[QueuedDelivery | None]:
        if not deliveries:
            return []
        async with self._database.transaction() as connection:
            return await store_deliveries(connection, deliveries)

    async def queues(self) -> list[tuple[str, str]]:
        rows = await self._database.fetch(
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
        rows = await self._database.fetch(_FETCH, realm, policy, after, list(skip_seqs), limit)
        return [_queued(row) for row in rows]

    async def record_failure(self, seq: int, attempts: int, next_attempt_at: int) -> None:
        await self._database.execute(
            "UPDATE trigger_deliveries SET attempts = $2, next_attempt_at = $3 WHERE seq = $1",
            seq,
            attempts,
            next_attempt_at,
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
                await self._database.execute(
                    "DELETE FROM trigger_deliveries WHERE seq = ANY($1::bigint[])",
                    [seq for seq, _ in batch],
                )
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
        rows = await self._database.fetch(_TRIM, realm, policy, list(skip_seqs), capacity)
        return _removed(rows)

    async def drop_expired(
        self, realm: str, policy: str, *, now: int, skip_seqs: Sequence[int] = ()
    ) -> list[tuple[int, uuid.UUID]]:
        rows = await self._database.fetch(_EXPIRE, realm, policy, list(skip_seqs), now)
        return _removed(rows)

    async def lease(self, realm: str, policy: str, owner: str, *, now: int, ttl: int) -> bool:
        """One upsert: a live lease of another owner is left alone (no row returned); a
        realm that is gone fails its foreign key, which means no lease."""
        try:
            row = await self._database.fetchrow(_LEASE, realm, policy, owner, now + ttl, now)
        except asyncpg.ForeignKeyViolationError:
            return False
        return row is not None

    async def release_lease(self, realm: str, policy: str, owner: str) -> None:
        await self._database.execute(
            "DELETE FROM trigger_queue_leases WHERE realm = $1 AND policy = $2 AND owner = $3",
            realm,
            policy,
            owner,
        )


def _row(seq: int, delivery: NewDelivery) -> tuple[object, ...]:
    """The columns `_INSERT` unnests, in its order."""
    return (
        seq,
        delivery.realm,
        delivery.policy,
        decode_device_id(delivery.device_id),
        delivery.trigger_id.bytes,
        delivery.simple_trigger_id.bytes,
        delivery.event_type,
        delivery.event,
        delivery.enqueued_at,
        delivery.expires_at,
    )


def _queued_new(seq: int, delivery: NewDelivery) -> QueuedDelivery:
    return QueuedDelivery(
        seq=seq,
        device_id=delivery.device_id,
        trigger_id=delivery.trigger_id,
        event=delivery.event,
        enqueued_at=delivery.enqueued_at,
        expires_at=delivery.expires_at,
        attempts=0,
        next_attempt_at=delivery.enqueued_at,
    )


def _removed(rows: Sequence[asyncpg.Record]) -> list[tuple[int, uuid.UUID]]:
    return [(row["seq"], uuid.UUID(bytes=row["trigger_id"])) for row in rows]


def _queued(row: asyncpg.Record) -> QueuedDelivery:
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
