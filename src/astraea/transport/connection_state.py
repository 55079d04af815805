"""One device connection's MQTT 3.1.1 server protocol (sans-IO: bytes in, events and bytes out).

States: AWAITING_CONNECT -> AWAITING_DECISION -> CONNECTED -> CLOSED (any state may jump
to CLOSED). Rules kept here:

- The first packet must be CONNECT. Nothing after it is decoded until the caller accepts
  (with a session) or refuses it, so pipelined packets wait for the session they need.
- Packets only a server sends and a second CONNECT are a ProtocolError; after DISCONNECT
  nothing more is decoded.
- PINGREQ, PUBREL and the acks of server->device messages are answered here; only CONNECT,
  PUBLISH, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT reach the caller, in wire order.
- A QoS 1/2 PUBLISH is acknowledged only when the caller calls `acknowledge` (after the
  platform accepted it). A QoS 2 packet id is handed out once: a duplicate that arrives
  while it is pending is dropped, one that arrives after PUBREC gets PUBREC again, and PUBREL
  forgets the id.
- Server->device QoS 1/2 messages wait in the session queue and move into at most
  `max_inflight` in-flight slots; each ack frees a slot. On accept, in-flight messages of a
  resumed session are resent first (PUBLISH with DUP, or PUBREL when PUBREC was seen).
- No clocks: the caller passes `now` and asks for `deadline()`: the connect timeout before
  CONNECT, then 1.5 x keep-alive after the last packet (none for keep-alive 0).
"""

from __future__ import annotations

import enum

from astraea.transport.packets import (
    DEFAULT_MAX_PACKET_SIZE,
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    Packet,
    PacketDecoder,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from astraea.transport.sessions import InflightMessage, OutboundMessage, Session

#: What the caller has to act on.
Event = Connect | Publish | Subscribe | Unsubscribe | Disconnect

_PROTOCOL_LEVEL_311 = 4
_KEEPALIVE_GRACE = 1.5


class ConnectionState(enum.Enum):
    AWAITING_CONNECT = enum.auto()
    AWAITING_DECISION = enum.auto()
    CONNECTED = enum.auto()
    CLOSED = enum.auto()


#: States in which received bytes are decoded (AWAITING_DECISION holds them back).
_DECODING = frozenset((ConnectionState.AWAITING_CONNECT, ConnectionState.CONNECTED))


class ServerConnection:
    __slots__ = (
        "_connect_timeout",
        "_deadline_base",
        "_decoder",
        "_keepalive",
        "_max_inflight",
        "_output",
        "_qos2_pending",
        "_session",
        "state",
    )

    def __init__(
        self,
        now: float,
        *,
        connect_timeout: float = 10.0,
        max_inflight: int = 100,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
    ) -> None:
        self.state = ConnectionState.AWAITING_CONNECT
        self._connect_timeout = connect_timeout
        self._decoder = PacketDecoder(max_packet_size)
        self._output: list[bytes] = []
        self._session: Session | None = None
        self._keepalive = 0
        self._deadline_base = now
        self._max_inflight = max_inflight
        self._qos2_pending: set[int] = set()

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def buffered(self) -> int:
        """Received bytes not decoded yet."""
        return self._decoder.buffered

    def deadline(self) -> float | None:
        """When the peer will have been silent for too long, if it can be."""
        if self.state is ConnectionState.AWAITING_CONNECT:
            return self._deadline_base + self._connect_timeout
        if self.state is ConnectionState.CONNECTED and self._keepalive:
            return self._deadline_base + _KEEPALIVE_GRACE * self._keepalive
        return None

    def receive_data(self, data: bytes | memoryview) -> None:
        if self.state is not ConnectionState.CLOSED:
            self._decoder.feed(data)

    def next_event(self, now: float) -> Event | None:
        """The next packet the caller must act on; None until more bytes or a decision."""
        while self.state in _DECODING:
            packet = self._decoder.next_packet()
            if packet is None:
                return None
            self._deadline_base = now
            if self.state is ConnectionState.AWAITING_CONNECT:
                return self._handle_first(packet)
            event = self._handle(packet)
            if event is not None:
                return event
        return None

    def accept(self, session: Session, *, session_present: bool) -> None:
        self._require(ConnectionState.AWAITING_DECISION)
        self.state = ConnectionState.CONNECTED
        self._session = session
        self._output.append(ConnAck(ConnectReturnCode.ACCEPTED, session_present).encode())
        for packet_id, entry in session.inflight.items():
            if entry.released:
                self._output.append(PubRel(packet_id).encode())
            else:
                self._output.append(_publish_packet(entry.message, packet_id, dup=True))
        self._fill_inflight(session)

    def refuse(self, return_code: ConnectReturnCode) -> None:
        self._require(ConnectionState.AWAITING_DECISION)
        self._output.append(ConnAck(return_code).encode())
        self.state = ConnectionState.CLOSED

    def acknowledge(self, publish: Publish) -> None:
        """The platform accepted this PUBLISH: PUBACK (QoS 1) or PUBREC (QoS 2)."""
        if publish.qos == 1:
            self._output.append(PubAck(publish.packet_id).encode())
        elif publish.qos == 2:
            self._qos2_pending.discard(publish.packet_id)
            self._connected_session().qos2_received.add(publish.packet_id)
            self._output.append(PubRec(publish.packet_id).encode())

    def complete_subscribe(self, subscribe: Subscribe, return_codes: tuple[int, ...]) -> None:
        """Record the granted filters (codes 0-2) and answer with SUBACK."""
        session = self._connected_session()
        for (topic_filter, _), code in zip(subscribe.subscriptions, return_codes, strict=True):
            if code <= 2:
                session.subscriptions[topic_filter] = code
        self._output.append(SubAck(subscribe.packet_id, return_codes).encode())

    def complete_unsubscribe(self, unsubscribe: Unsubscribe) -> None:
        session = self._connected_session()
        for topic_filter in unsubscribe.topic_filters:
            session.subscriptions.pop(topic_filter, None)
        self._output.append(UnsubAck(unsubscribe.packet_id).encode())

    def send_message(self, message: OutboundMessage) -> bool:
        """Send or queue a server->device message; False if the queue overflowed."""
        session = self._connected_session()
        if not message.qos:
            self._output.append(_publish_packet(message, 0, dup=False))
            return True
        kept = session.enqueue(message)
        self._fill_inflight(session)
        return kept

    def close(self) -> None:
        self.state = ConnectionState.CLOSED

    def data_to_send(self) -> bytes:
        if not self._output:
            return b""
        data = b"".join(self._output)
        self._output.clear()
        return data

    def _handle_first(self, packet: Packet) -> Connect:
        if not isinstance(packet, Connect):
            raise ProtocolError(f"expected CONNECT, got {type(packet).__name__}")
        if packet.protocol_level != _PROTOCOL_LEVEL_311:
            self._output.append(ConnAck(ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION).encode())
            self.state = ConnectionState.CLOSED
            raise ProtocolError(f"unsupported protocol level {packet.protocol_level}")
        self._keepalive = packet.keepalive
        self.state = ConnectionState.AWAITING_DECISION
        return packet

    def _handle(self, packet: Packet) -> Event | None:
        if isinstance(packet, Publish):
            return self._receive_qos2(packet) if packet.qos == 2 else packet
        session = self._connected_session()
        if isinstance(packet, PubAck):
            self._complete_outbound(session, packet.packet_id, qos=1)
        elif isinstance(packet, PubComp):
            self._complete_outbound(session, packet.packet_id, qos=2)
        elif isinstance(packet, PubRec):
            entry = session.inflight.get(packet.packet_id)
            if entry is not None and entry.message.qos == 2:
                entry.released = True
                self._output.append(PubRel(packet.packet_id).encode())
        elif isinstance(packet, PubRel):
            session.qos2_received.discard(packet.packet_id)
            self._output.append(PubComp(packet.packet_id).encode())
        elif isinstance(packet, PingReq):
            self._output.append(PingResp().encode())
        elif isinstance(packet, Subscribe | Unsubscribe):
            return packet
        elif isinstance(packet, Disconnect):
            self.state = ConnectionState.CLOSED
            return packet
        else:
            raise ProtocolError(f"{type(packet).__name__} is not allowed from a client here")
        return None

    def _receive_qos2(self, publish: Publish) -> Publish | None:
        packet_id = publish.packet_id
        if packet_id in self._qos2_pending:
            return None
        if packet_id in self._connected_session().qos2_received:
            self._output.append(PubRec(packet_id).encode())
            return None
        self._qos2_pending.add(packet_id)
        return publish

    def _complete_outbound(self, session: Session, packet_id: int, *, qos: int) -> None:
        entry = session.inflight.get(packet_id)
        if entry is not None and entry.message.qos == qos:
            del session.inflight[packet_id]
            self._fill_inflight(session)

    def _fill_inflight(self, session: Session) -> None:
        queued = session.queued
        inflight = session.inflight
        while queued and len(inflight) < self._max_inflight:
            message = queued.popleft()
            packet_id = session.allocate_packet_id()
            inflight[packet_id] = InflightMessage(message)
            self._output.append(_publish_packet(message, packet_id, dup=False))

    def _connected_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the connection has no session yet")
        return self._session

    def _require(self, state: ConnectionState) -> None:
        if self.state is not state:
            raise RuntimeError(f"not allowed in state {self.state.name}")


def _publish_packet(message: OutboundMessage, packet_id: int, *, dup: bool) -> bytes:
    publish = Publish(message.topic, message.payload, message.qos, message.retain, dup, packet_id)
    return publish.encode()
