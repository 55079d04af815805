"""MQTT sessions: the state that may outlive a connection (sans-IO).

Rules:
- A session is keyed by device identity, never by client id.
- clean_session=1 discards any previous session and the new one dies with its connection;
  clean_session=0 resumes the previous session (CONNACK session-present) and keeps it
  after disconnect: subscriptions, server->device QoS 1/2 messages not yet acknowledged
  (resent with DUP on reconnect), queued ones, and inbound QoS 2 packet ids awaiting PUBREL.
- The queue of messages waiting for a connection or a free in-flight slot is bounded:
  past the bound the oldest message is dropped and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from astraea.transport.identity import DeviceIdentity
from astraea.transport.topics import topic_matches

_MAX_PACKET_ID = 65_535


@dataclass(slots=True)
class OutboundMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass(slots=True)
class InflightMessage:
    message: OutboundMessage
    #: QoS 2 only: PUBREC arrived and PUBREL was sent; only PUBCOMP is missing.
    released: bool = False


class Session:
    __slots__ = (
        "_last_packet_id",
        "_max_queued",
        "dropped_messages",
        "identity",
        "inflight",
        "persistent",
        "qos2_received",
        "queued",
        "subscriptions",
    )

    def __init__(self, identity: DeviceIdentity, *, persistent: bool, max_queued: int) -> None:
        self.identity = identity
        self.persistent = persistent
        self.subscriptions: dict[str, int] = {}
        self.queued: deque[OutboundMessage] = deque()
        self.inflight: dict[int, InflightMessage] = {}
        self.qos2_received: set[int] = set()
        self.dropped_messages = 0
        self._max_queued = max_queued
        self._last_packet_id = 0

    def granted_qos(self, topic: str) -> int | None:
        """Highest QoS granted by a subscription matching `topic`, None if none does."""
        granted = [qos for flt, qos in self.subscriptions.items() if topic_matches(flt, topic)]
        return max(granted, default=None)

    def enqueue(self, message: OutboundMessage) -> bool:
        """Queue a QoS 1/2 message; False when the queue was full and its oldest was dropped."""
        self.queued.append(message)
        if len(self.queued) <= self._max_queued:
            return True
        self.queued.popleft()
        self.dropped_messages += 1
        return False

    def allocate_packet_id(self) -> int:
        packet_id = self._last_packet_id
        while True:
            packet_id = packet_id % _MAX_PACKET_ID + 1
            if packet_id not in self.inflight:
                self._last_packet_id = packet_id
                return packet_id


class SessionRegistry:
    """All sessions of this transport node, at most one per device identity."""

    __slots__ = ("_max_queued", "_sessions")

    def __init__(self, *, max_queued_messages: int) -> None:
        self._sessions: dict[DeviceIdentity, Session] = {}
        self._max_queued = max_queued_messages

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, identity: DeviceIdentity) -> Session | None:
        return self._sessions.get(identity)

    def open(self, identity: DeviceIdentity, *, clean_session: bool) -> tuple[Session, bool]:
        """The session for a new connection and whether it already existed."""
        existing = self._sessions.get(identity)
        if existing is not None and not clean_session:
            return existing, True
        session = Session(identity, persistent=not clean_session, max_queued=self._max_queued)
        self._sessions[identity] = session
        return session, False

    def release(self, session: Session) -> None:
        """Its connection ended: keep the session only if it is persistent."""
        if not session.persistent and self._sessions.get(session.identity) is session:
            del self._sessions[session.identity]

    def discard(self, identity: DeviceIdentity) -> bool:
        return self._sessions.pop(identity, None) is not None
