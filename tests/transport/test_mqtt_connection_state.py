"""The sans-IO per-connection protocol, driven with bytes in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astraea.transport.connection_state import ConnectionState, Event, ServerConnection
from astraea.transport.identity import DeviceIdentity
from astraea.transport.packets import (
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
from astraea.transport.sessions import OutboundMessage, Session

IDENTITY = DeviceIdentity("test", "dev")


class Wire:
    """A ServerConnection with helpers to send packets and read what it answers."""

    def __init__(self, *, max_inflight: int = 100, keepalive: int = 0) -> None:
        self.connection = ServerConnection(0.0, connect_timeout=5.0, max_inflight=max_inflight)
        self.keepalive = keepalive

    def send(self, *packets: Packet, now: float = 0.0) -> list[Event]:
        for packet in packets:
            self.connection.receive_data(packet.encode())
        events: list[Event] = []
        while (event := self.connection.next_event(now)) is not None:
            events.append(event)
        return events

    def answers(self) -> list[Packet]:
        decoder = PacketDecoder()
        decoder.feed(self.connection.data_to_send())
        decoded = []
        while (packet := decoder.next_packet()) is not None:
            decoded.append(packet)
        return decoded

    def connect(self, session: Session | None = None, *, present: bool = False) -> Session:
        session = session or Session(IDENTITY, persistent=False, max_queued=10)
        assert self.send(Connect("c", self.keepalive)) == [Connect("c", self.keepalive)]
        self.connection.accept(session, session_present=present)
        assert self.answers()[0] == ConnAck(session_present=present)
        return session


def test_nothing_after_connect_is_decoded_until_it_is_accepted() -> None:
    wire = Wire()
    publish = Publish("test/dev/a", b"1", qos=1, packet_id=1)

    events = wire.send(Connect("c"), publish)

    assert events == [Connect("c")]
    assert wire.connection.buffered == len(publish.encode())
    wire.connection.accept(Session(IDENTITY, persistent=False, max_queued=1), session_present=False)
    assert wire.send() == [publish]


def test_refusal_answers_connack_and_closes() -> None:
    wire = Wire()
    wire.send(Connect("c"), PingReq())

    wire.connection.refuse(ConnectReturnCode.NOT_AUTHORIZED)

    assert wire.answers() == [ConnAck(ConnectReturnCode.NOT_AUTHORIZED)]
    assert wire.connection.state is ConnectionState.CLOSED
    assert wire.send() == []


@pytest.mark.parametrize("first", [PingReq(), Publish("a", b""), Disconnect()])
def test_first_packet_must_be_connect(first: Packet) -> None:
    with pytest.raises(ProtocolError, match="expected CONNECT"):
        Wire().send(first)


def test_unsupported_protocol_level_gets_connack_1() -> None:
    wire = Wire()
    with pytest.raises(ProtocolError, match="protocol level"):
        wire.send(Connect("c", protocol_level=3))
    assert wire.answers() == [ConnAck(ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION)]


@pytest.mark.parametrize("packet", [Connect("again"), ConnAck(), SubAck(1, (0,)), PingResp()])
def test_packets_a_client_may_not_send_are_protocol_errors(packet: Packet) -> None:
    wire = Wire()
    wire.connect()
    with pytest.raises(ProtocolError):
        wire.send(packet)


def test_qos1_is_acknowledged_only_when_the_caller_says_so() -> None:
    wire = Wire()
    wire.connect()
    publish = Publish("t", b"x", qos=1, packet_id=7)

    assert wire.send(publish) == [publish]
    assert wire.answers() == []
    wire.connection.acknowledge(publish)
    assert wire.answers() == [PubAck(7)]


def test_qos2_packet_id_is_delivered_once() -> None:
    wire = Wire()
    session = wire.connect()
    publish = Publish("t", b"x", qos=2, packet_id=3)
    duplicate = Publish("t", b"x", qos=2, dup=True, packet_id=3)

    assert wire.send(publish, duplicate) == [publish]
    assert wire.answers() == []
    wire.connection.acknowledge(publish)
    assert wire.answers() == [PubRec(3)]
    assert wire.send(duplicate) == []
    assert wire.answers() == [PubRec(3)]
    assert session.qos2_received == {3}
    assert wire.send(PubRel(3)) == []
    assert wire.answers() == [PubComp(3)]
    assert wire.send(publish) == [publish]


def test_ping_subscribe_unsubscribe_disconnect() -> None:
    wire = Wire()
    session = wire.connect()
    subscribe = Subscribe(1, (("test/dev/#", 2), ("other/#", 1)))
    unsubscribe = Unsubscribe(2, ("test/dev/#",))

    assert wire.send(PingReq(), subscribe) == [subscribe]
    wire.connection.complete_subscribe(subscribe, (1, 0x80))
    assert session.subscriptions == {"test/dev/#": 1}
    assert wire.send(unsubscribe) == [unsubscribe]
    wire.connection.complete_unsubscribe(unsubscribe)
    assert session.subscriptions == {}
    assert wire.answers() == [PingResp(), SubAck(1, (1, 0x80)), UnsubAck(2)]
    assert wire.send(Disconnect(), PingReq()) == [Disconnect()]
    assert wire.connection.state is ConnectionState.CLOSED


def test_outbound_qos1_and_qos2_flows() -> None:
    wire = Wire()
    session = wire.connect()

    wire.connection.send_message(OutboundMessage("t/1", b"a", qos=1))
    wire.connection.send_message(OutboundMessage("t/2", b"b", qos=2))
    wire.connection.send_message(OutboundMessage("t/0", b"c", qos=0))

    assert wire.answers() == [
        Publish("t/1", b"a", qos=1, packet_id=1),
        Publish("t/2", b"b", qos=2, packet_id=2),
        Publish("t/0", b"c"),
    ]
    wire.send(PubAck(1), PubRec(2))
    assert wire.answers() == [PubRel(2)]
    assert list(session.inflight) == [2]
    wire.send(PubComp(2))
    assert session.inflight == {}


def test_inflight_window_holds_back_the_rest() -> None:
    wire = Wire(max_inflight=2)
    session = wire.connect()

    for index in range(4):
        wire.connection.send_message(OutboundMessage(f"t/{index}", b"", qos=1))

    assert [packet.packet_id for packet in wire.answers()] == [1, 2]  # type: ignore[union-attr]
    assert len(session.queued) == 2
    wire.send(PubAck(2))
    assert wire.answers() == [Publish("t/2", b"", qos=1, packet_id=3)]


def test_resumed_session_resends_inflight_with_dup_first() -> None:
    first = Wire()
    session = first.connect(Session(IDENTITY, persistent=True, max_queued=10))
    first.connection.send_message(OutboundMessage("t/a", b"a", qos=1))
    first.connection.send_message(OutboundMessage("t/b", b"b", qos=2))
    first.send(PubRec(2))
    first.connection.close()
    session.enqueue(OutboundMessage("t/c", b"c", qos=1))

    second = Wire()
    second.send(Connect("c"))
    second.connection.accept(session, session_present=True)

    assert second.answers() == [
        ConnAck(session_present=True),
        Publish("t/a", b"a", qos=1, dup=True, packet_id=1),
        PubRel(2),
        Publish("t/c", b"c", qos=1, packet_id=3),
    ]


def test_queue_overflow_is_reported() -> None:
    wire = Wire(max_inflight=1)
    wire.connect(Session(IDENTITY, persistent=False, max_queued=1))

    assert wire.connection.send_message(OutboundMessage("t", b"1", qos=1))
    assert wire.connection.send_message(OutboundMessage("t", b"2", qos=1))
    assert not wire.connection.send_message(OutboundMessage("t", b"3", qos=1))


def test_deadlines() -> None:
    wire = Wire(keepalive=10)
    assert wire.connection.deadline() == 5.0  # connect timeout, counted from creation
    wire.send(Connect("c", 10), now=1.0)
    assert wire.connection.deadline() is None  # deciding: not the device's fault
    wire.connection.accept(Session(IDENTITY, persistent=False, max_queued=1), session_present=False)
    assert wire.connection.deadline() == 16.0
    wire.send(PingReq(), now=4.0)
    assert wire.connection.deadline() == 19.0

    no_keepalive = Wire(keepalive=0)
    no_keepalive.connect()
    assert no_keepalive.connection.deadline() is None


@given(st.binary(max_size=300))
def test_random_bytes_after_connect_only_raise_protocol_error(data: bytes) -> None:
    wire = Wire()
    wire.connect()
    wire.connection.receive_data(data)
    try:
        while (event := wire.connection.next_event(0.0)) is not None:
            if isinstance(event, Publish):
                wire.connection.acknowledge(event)
    except ProtocolError:
        pass
