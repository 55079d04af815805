"""The SQLite delivery queue repository: order, reading on, skipping, trimming, expiry, realm
deletion."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from trigger_support import DEVICE, OTHER_DEVICE

from astraea.storage import open_storage
from astraea.storage.base import NewDelivery, Storage

TRIGGER = uuid.UUID(int=7)


def delivery(
    n: int,
    *,
    policy: str = "p",
    device: str = DEVICE,
    realm: str = "test",
    expires_at: int | None = None,
    trigger: uuid.UUID = TRIGGER,
) -> NewDelivery:
    return NewDelivery(
        realm=realm,
        policy=policy,
        device_id=device,
        trigger_id=trigger,
        simple_trigger_id=uuid.UUID(int=n),
        event_type="device_connected_event",
        event=f"event {n}".encode(),
        enqueued_at=1000 + n,
        expires_at=expires_at,
    )


async def test_fifo_per_queue(storage: Storage) -> None:
    queue = storage.delivery_queue
    stored = await queue.enqueue([delivery(1), delivery(2, policy="q"), delivery(3)])
    assert [row.seq for row in stored if row] == sorted(row.seq for row in stored if row)
    rows = await queue.fetch("test", "p", limit=10)
    assert [row.event for row in rows] == [b"event 1", b"event 3"]
    assert rows == [stored[0], stored[2]]  # enqueue returns the rows as stored
    first = rows[0]
    assert (first.device_id, first.trigger_id, first.attempts) == (DEVICE, TRIGGER, 0)
    assert first.enqueued_at == first.next_attempt_at == 1001
    assert await queue.queues() == [("test", "p"), ("test", "q")]


async def test_fetch_reads_on_after_a_seq_and_skips_in_flight_rows(storage: Storage) -> None:
    queue = storage.delivery_queue
    await queue.enqueue([delivery(1), delivery(2, device=OTHER_DEVICE), delivery(3)])
    rows = await queue.fetch("test", "p", limit=10)
    assert len(rows) == 3
    later = await queue.fetch("test", "p", limit=10, after=rows[0].seq)
    assert [row.event for row in later] == [b"event 2", b"event 3"]
    skipped = await queue.fetch("test", "p", limit=10, skip_seqs=[rows[1].seq])
    assert [row.event for row in skipped] == [b"event 1", b"event 3"]
    assert len(await queue.fetch("test", "p", limit=1)) == 1


async def test_failures_persist_and_remove(storage: Storage) -> None:
    queue = storage.delivery_queue
    await queue.enqueue([delivery(1)])
    (row,) = await queue.fetch("test", "p", limit=1)
    await queue.record_failure(row.seq, 2, 5000)
    (again,) = await queue.fetch("test", "p", limit=1)
    assert (again.attempts, again.next_attempt_at) == (2, 5000)
    await queue.remove(row.seq)
    assert await queue.fetch("test", "p", limit=1) == []
    assert await queue.queues() == []


async def test_trim_drops_the_oldest_waiting_rows(storage: Storage) -> None:
    queue = storage.delivery_queue
    other = uuid.UUID(int=8)
    await queue.enqueue([delivery(n, trigger=other if n == 2 else TRIGGER) for n in range(1, 6)])
    rows = await queue.fetch("test", "p", limit=10)
    in_flight = [rows[0].seq]
    dropped = await queue.trim("test", "p", capacity=2, skip_seqs=in_flight)
    # events 2 and 3; event 1 is in flight
    assert dropped == [(rows[1].seq, other), (rows[2].seq, TRIGGER)]
    left = await queue.fetch("test", "p", limit=10)
    assert [row.event for row in left] == [b"event 1", b"event 4", b"event 5"]
    assert await queue.trim("test", "p", capacity=2, skip_seqs=in_flight) == []


async def test_drop_expired(storage: Storage) -> None:
    queue = storage.delivery_queue
    await queue.enqueue([delivery(1, expires_at=100), delivery(2, expires_at=200), delivery(3)])
    rows = await queue.fetch("test", "p", limit=10)
    assert await queue.drop_expired("test", "p", now=150, skip_seqs=[]) == [(rows[0].seq, TRIGGER)]
    assert await queue.drop_expired("test", "p", now=10_000, skip_seqs=[rows[1].seq]) == []
    assert [row.event for row in await queue.fetch("test", "p", limit=10)] == [
        b"event 2",
        b"event 3",
    ]


async def test_unknown_realm_is_skipped_and_deleting_a_realm_empties_its_queues(
    storage: Storage,
) -> None:
    queue = storage.delivery_queue
    ghost, stored = await queue.enqueue([delivery(1, realm="ghost"), delivery(2)])
    assert ghost is None and stored is not None
    assert await storage.realms.delete("test")
    assert await queue.queues() == []


async def test_rows_survive_reopening(db_path: Path, storage: Storage) -> None:
    await storage.delivery_queue.enqueue([delivery(1)])
    await storage.close()
    reopened = await open_storage(f"sqlite://{db_path}")
    try:
        (row,) = await reopened.delivery_queue.fetch("test", "p", limit=5)
        assert row.event == b"event 1"
    finally:
        await reopened.close()


async def test_a_removal_returns_once_committed_while_others_keep_coming(
    storage: Storage,
) -> None:
    """Removals are group-committed; the first one must not wait for the stream to end."""
    queue = storage.delivery_queue
    rows = [row for row in await queue.enqueue([delivery(n) for n in range(3000)]) if row]
    first = asyncio.create_task(queue.remove(rows[0].seq))
    others = []
    for row in rows[1:]:  # faster than commits: there is always a next batch
        others.append(asyncio.create_task(queue.remove(row.seq)))
        await asyncio.sleep(0)
        if first.done():
            break
    assert first.done() and len(others) < len(rows) - 1
    await asyncio.gather(first, *others)
    assert len(await queue.fetch("test", "p", limit=5000)) == len(rows) - 1 - len(others)
