"""Where persistent sessions live while their device is away.

A node keeps a session in memory only while it holds the device; when the connection ends
the session is handed to a `SessionStore`, and the next connection of the device, on this
node or another, takes it back. The platform's store is storage (`astraea.transport.gateway`);
`MemorySessionStore` serves a transport that runs on its own (and its tests).
"""

from __future__ import annotations

import abc

from astraea.core.sessions import SessionMessage, StoredSession, stored_message
from astraea.transport.identity import DeviceIdentity
from astraea.transport.sessions import Session


class SessionStore(abc.ABC):
    @abc.abstractmethod
    async def open(self, identity: DeviceIdentity, *, clean: bool) -> StoredSession | None:
        """Called before a connection of `identity` is accepted, once any previous holder
        has let go: a clean connection discards the stored session (returns None); a
        persistent one takes it (None: there was none, a fresh one is kept from now on)."""

    @abc.abstractmethod
    async def subscribed(self, identity: DeviceIdentity, subscriptions: dict[str, int]) -> None:
        """A persistent session's subscriptions changed (kept at once: a node may die)."""

    @abc.abstractmethod
    async def release(self, identity: DeviceIdentity, session: StoredSession) -> None:
        """The connection of a persistent session ended: keep it until the next one."""

    @abc.abstractmethod
    async def discard(self, identity: DeviceIdentity) -> None: ...

    @abc.abstractmethod
    async def enqueue(self, identity: DeviceIdentity, topic: str, payload: bytes, qos: int) -> bool:
        """Queues a message for a device that is away; False when its session cannot take
        it (no session, no matching subscription, QoS 0)."""


def kept_state(session: Session) -> StoredSession:
    """What outlives the connection of a persistent session (see `StoredSession`)."""
    return StoredSession(
        None, dict(session.subscriptions), pending_messages(session), sorted(session.qos2_received)
    )


def pending_messages(session: Session) -> list[SessionMessage]:
    """What a session still owes its device, oldest first: unacknowledged in-flight messages
    (resent on the next connection) and the queue. A QoS 2 message whose PUBREL was sent
    already reached the device, so it is not resent."""
    owed = [
        SessionMessage(entry.message.topic, entry.message.payload, entry.message.qos, sent=True)
        for entry in session.inflight.values()
        if not entry.released
    ]
    owed.extend(SessionMessage(m.topic, m.payload, m.qos) for m in session.queued)
    return owed


class MemorySessionStore(SessionStore):
    """Sessions of away devices in this process's memory: lost when it stops."""

    def __init__(self, *, max_queued: int) -> None:
        self._max_queued = max_queued
        self._away: dict[DeviceIdentity, StoredSession] = {}

    async def open(self, identity: DeviceIdentity, *, clean: bool) -> StoredSession | None:
        stored = self._away.pop(identity, None)
        return None if clean else stored

    async def subscribed(self, identity: DeviceIdentity, subscriptions: dict[str, int]) -> None:
        return None

    async def release(self, identity: DeviceIdentity, session: StoredSession) -> None:
        self._away[identity] = session

    async def discard(self, identity: DeviceIdentity) -> None:
        self._away.pop(identity, None)

    async def enqueue(self, identity: DeviceIdentity, topic: str, payload: bytes, qos: int) -> bool:
        session = self._away.get(identity)
        message = (
            None if session is None else stored_message(session.subscriptions, topic, payload, qos)
        )
        if session is None or message is None:
            return False
        session.queued.append(message)
        del session.queued[: -self._max_queued]
        return True
