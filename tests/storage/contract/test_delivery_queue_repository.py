"""DeliveryQueueRepository contract: order, reading on, skipping, trimming, expiry, realm
deletion, group-committed removal."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest

from astraea.storage import open_storage
from astraea.storage.base import NewDelivery, Storage

# Every test queues deliveries of the realm `test`.
pytestmark = pytest.mark.usefixtures("realm")

DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
OTHER_DEVICE = "f0VMRgIBAQAAAAAAAAAAAA"
TRIGGER = uuid.UUID(int=7)
STREAM_LIMIT = 3.0  # seconds


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


async def test_rows_survive_reopening(storage_url: str, storage: Storage) -> None:
    await storage.delivery_queue.enqueue([delivery(1)])
    await storage.close()
    reopened = await open_storage(storage_url)
    try:
        (row,) = await reopened.delivery_queue.fetch("test", "p", limit=5)
        assert row.event == b"event 1"
    finally:
        await reopened.close()


async def test_a_removal_returns_once_committed_while_others_keep_coming(
    storage: Storage,
) -> None:
    """Removals are group-committed; the first one must not wait for the stream to end.

    The stream (one removal per event-loop turn, faster than commits, so there is always a
    next batch) goes on until the first removal returns, for at most STREAM_LIMIT seconds:
    a first commit can take a while on a loaded or virtual machine, but a remover that made
    its first caller wait for the stream would reach the limit. Removing a delivery that is
    already gone changes nothing, so the stream may cycle.
    """
    queue = storage.delivery_queue
    rows = [row for row in await queue.enqueue([delivery(n) for n in range(3000)]) if row]
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(queue.remove(rows[0].seq))
    stream = itertools.cycle(row.seq for row in rows[1:])
    removed = {rows[0].seq}
    others = []
    deadline = loop.time() + STREAM_LIMIT
    while not first.done() and loop.time() < deadline:
        seq = next(stream)
        removed.add(seq)
        others.append(asyncio.create_task(queue.remove(seq)))
        await asyncio.sleep(0)
    assert first.done()
    await asyncio.gather(first, *others)
    assert len(await queue.fetch("test", "p", limit=5000)) == len(rows) - len(removed)


async def test_a_lease_belongs_to_one_owner_until_it_expires(storage: Storage) -> None:
    queue = storage.delivery_queue
    assert await queue.lease("test", "p", "a", now=1000, ttl=100)
    assert not await queue.lease("test", "p", "b", now=1050, ttl=100)
    assert await queue.lease("test", "p", "a", now=1050, ttl=100)  # renewed until 1150
    assert not await queue.lease("test", "p", "b", now=1149, ttl=100)
    assert await queue.lease("test", "p", "b", now=1150, ttl=100)  # expired: taken over
    assert not await queue.lease("test", "p", "a", now=1160, ttl=100)
    assert await queue.lease("test", "other", "a", now=1160, ttl=100)  # per queue

    await queue.release_lease("test", "p", "a")  # not its own: nothing happens
    assert not await queue.lease("test", "p", "a", now=1170, ttl=100)
    await queue.release_lease("test", "p", "b")
    assert await queue.lease("test", "p", "a", now=1170, ttl=100)


async def test_no_lease_on_a_realm_that_is_gone(storage: Storage) -> None:
    assert not await storage.delivery_queue.lease("gone", "p", "a", now=0, ttl=100)
    assert await storage.delivery_queue.lease("test", "p", "a", now=0, ttl=100)
    assert await storage.realms.delete("test")
    assert not await storage.delivery_queue.lease("test", "p", "b", now=0, ttl=100)
