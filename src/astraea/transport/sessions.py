"""MQTT sessions: the state that may outlive a connection (sans-IO).

Rules:
- A session is keyed by device identity, never by client id.
- clean_session=1 discards any previous session and the new one dies with its connection;
  clean_session=0 resumes the previous session (CONNACK session-present) and keeps it
  after disconnect, in a `SessionStore`: subscriptions, server->device QoS 1/2 messages not
  yet acknowledged (resent with DUP on reconnect) and queued ones. Inbound QoS 2 packet ids
  awaiting PUBREL live only as long as the connection: a device that resends such a publish
  after reconnecting has it handled again (at least once, as for QoS 1).
- The queue of messages waiting for a connection or a free in-flight slot is bounded:
  past the bound the oldest message is dropped and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from astraea.core.sessions import StoredSession, granted_qos
from astraea.transport.identity import DeviceIdentity

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
        return granted_qos(self.subscriptions, topic)

    def enqueue(self, message: OutboundMessage) -> bool:
        """Queue a QoS 1/2 message; False when the queue was full and its oldest was dropped."""
        self.queued.append(message)
        if len(self.queued) <= self._max_queued:
            return True
        self.queued.popleft()
        self.dropped_messages += 1
        return False

    def restore(self, stored: StoredSession) -> None:
        """Takes back what a stored session kept: its subscriptions, and its messages (those
        sent before become in flight again, to be resent with DUP)."""
        self.subscriptions.update(stored.subscriptions)
        self.qos2_received.update(stored.qos2_received)
        for kept in stored.queued:
            message = OutboundMessage(kept.topic, kept.payload, kept.qos)
            if kept.sent:
                self.inflight[self.allocate_packet_id()] = InflightMessage(message)
            else:
                self.queued.append(message)

    def allocate_packet_id(self) -> int:
        packet_id = self._last_packet_id
        while True:
            packet_id = packet_id % _MAX_PACKET_ID + 1
            if packet_id not in self.inflight:
                self._last_packet_id = packet_id
                return packet_id
