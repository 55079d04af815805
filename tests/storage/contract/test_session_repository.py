"""SessionRepository contract: ownership, write-back, queues of away devices."""

from __future__ import annotations

from datetime import UTC, datetime

from astraea.core.device_id import encode_device_id
from astraea.core.sessions import SessionMessage, StoredSession
from astraea.storage.base import Storage

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DEV = encode_device_id(bytes(range(16)))
SUBS = {"test/dev/#": 1, "test/dev/control/+": 2}


def message(n: int, *, sent: bool = False) -> SessionMessage:
    return SessionMessage(f"test/dev/m{n}", bytes([n]), 1 + n % 2, sent)


async def registered(storage: Storage, realm: str) -> None:
    await storage.devices.register(realm, DEV, "h", {}, T0)


async def test_a_session_goes_from_node_to_storage_and_back(storage: Storage, realm: str) -> None:
    await registered(storage, realm)
    sessions = storage.sessions
    assert await sessions.get(realm, DEV) is None
    assert await sessions.take(realm, DEV, "n1") is None  # nothing to take

    await sessions.create(realm, DEV, "n1", {})
    assert await sessions.get(realm, DEV) == StoredSession("n1", {}, [], [])
    assert await sessions.save_subscriptions(realm, DEV, "n1", SUBS)
    assert not await sessions.save_subscriptions(realm, DEV, "n2", {})  # not its owner
    assert not await sessions.enqueue(realm, DEV, message(9), max_queued=10)  # owned: no

    kept = StoredSession(None, SUBS, [message(0, sent=True), message(1)], [4, 7])
    assert not await sessions.release(realm, DEV, "n2", kept)
    assert await sessions.release(realm, DEV, "n1", kept)
    assert await sessions.enqueue(realm, DEV, message(2), max_queued=10)
    away = await sessions.get(realm, DEV)
    assert away == StoredSession(
        None, SUBS, [message(0, sent=True), message(1), message(2)], [4, 7]
    )

    taken = await sessions.take(realm, DEV, "n2")
    assert taken == StoredSession("n2", SUBS, away.queued, [4, 7])
    again = await sessions.get(realm, DEV)
    assert again is not None and again.owner == "n2" and again.queued == []  # handed over


async def test_an_away_queue_keeps_the_newest(storage: Storage, realm: str) -> None:
    await registered(storage, realm)
    await storage.sessions.create(realm, DEV, "n1", SUBS)
    assert await storage.sessions.release(realm, DEV, "n1", StoredSession(None, SUBS))
    for n in range(5):
        assert await storage.sessions.enqueue(realm, DEV, message(n), max_queued=3)
    session = await storage.sessions.get(realm, DEV)
    assert session is not None and session.queued == [message(2), message(3), message(4)]


async def test_a_dead_nodes_sessions_are_freed_and_discard_removes(
    storage: Storage, realm: str
) -> None:
    await registered(storage, realm)
    await storage.sessions.create(realm, DEV, "dead", SUBS)
    assert await storage.sessions.release_node("dead") == 1
    session = await storage.sessions.get(realm, DEV)
    assert session is not None and session.owner is None and session.subscriptions == SUBS
    assert await storage.sessions.enqueue(realm, DEV, message(1), max_queued=3)

    await storage.sessions.discard(realm, DEV)
    assert await storage.sessions.get(realm, DEV) is None
    assert not await storage.sessions.enqueue(realm, DEV, message(1), max_queued=3)


async def test_sessions_go_with_their_device(storage: Storage, realm: str) -> None:
    await registered(storage, realm)
    await storage.sessions.create(realm, DEV, "n1", SUBS)
    assert await storage.sessions.release(realm, DEV, "n1", StoredSession(None, SUBS, [message(1)]))
    assert await storage.realms.delete(realm)
    assert await storage.sessions.get(realm, DEV) is None
