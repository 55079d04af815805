"""The sans-IO codec: round trips, malformed input, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    Will,
)

# -- strategies ---------------------------------------------------------------------------

_level = st.text(st.characters(codec="utf-8", exclude_characters="+#/\x00"), max_size=8)
topic_names = st.lists(_level, min_size=1, max_size=5).map("/".join).filter(bool)
topic_filters = st.builds(
    lambda levels, tail: "/".join([*levels, *tail]),
    st.lists(st.one_of(_level, st.just("+")), min_size=1, max_size=4),
    st.sampled_from([[], ["#"]]),
).filter(bool)
packet_ids = st.integers(1, 65_535)
qos_levels = st.integers(0, 2)
strings = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(qos_levels)
    return Publish(
        draw(topic_names),
        draw(st.binary(max_size=300)),
        qos,
        draw(st.booleans()),
        draw(st.booleans()) if qos else False,
        draw(packet_ids) if qos else 0,
    )


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    username = draw(st.none() | strings)
    will = draw(
        st.none() | st.builds(Will, topic_names, st.binary(max_size=50), qos_levels, st.booleans())
    )
    return Connect(
        draw(strings),
        draw(st.integers(0, 65_535)),
        draw(st.booleans()),
        username,
        draw(st.none() | st.binary(max_size=50)) if username is not None else None,
        will,
    )


packets: st.SearchStrategy[Packet] = st.one_of(
    connects(),
    st.builds(ConnAck, st.sampled_from(ConnectReturnCode), st.booleans()),
    publishes(),
    st.builds(PubAck, packet_ids),
    st.builds(PubRec, packet_ids),
    st.builds(PubRel, packet_ids),
    st.builds(PubComp, packet_ids),
    st.builds(
        Subscribe,
        packet_ids,
        st.lists(st.tuples(topic_filters, qos_levels), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(
        SubAck,
        packet_ids,
        st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4).map(tuple)),
    st.builds(UnsubAck, packet_ids),
    st.builds(PingReq),
    st.builds(PingResp),
    st.builds(Disconnect),
)


def decode_all(data: bytes, max_packet_size: int = 1 << 20) -> list[Packet]:
    decoder = PacketDecoder(max_packet_size)
    decoder.feed(data)
    decoded = []
    while (packet := decoder.next_packet()) is not None:
        decoded.append(packet)
    return decoded


# -- round trips --------------------------------------------------------------------------


@given(st.lists(packets, min_size=1, max_size=5))
def test_encoded_packets_decode_to_themselves(sequence: list[Packet]) -> None:
    assert decode_all(b"".join(packet.encode() for packet in sequence)) == sequence


@given(packets, st.data())
def test_decoding_does_not_depend_on_how_bytes_are_split(
    packet: Packet, data: st.DataObject
) -> None:
    wire = packet.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    decoder = PacketDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.feed(wire[start:end])
        while (next_packet := decoder.next_packet()) is not None:
            decoded.append(next_packet)
    assert decoded == [packet]
    assert decoder.buffered == 0


def test_large_payload_uses_a_multi_byte_remaining_length() -> None:
    publish = Publish("a/b", b"x" * 70_000, qos=1, packet_id=9)
    wire = publish.encode()
    # 70 007 = 5 (topic) + 2 (packet id) + 70 000, seven bits per byte, low group first
    assert wire[1:4] == b"\xf7\xa2\x04"
    assert decode_all(wire) == [publish]


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
        (b"\x00\x00", "reserved flags|reserved packet type"),
        (b"\xf0\x00", "reserved packet type"),
        (b"\xc1\x00", "reserved flags"),
        (b"\x60\x02\x00\x01", "reserved flags"),
        (b"\x80\x06\x00\x01\x00\x01a\x00", "reserved flags"),
        (b"\x36\x06\x00\x01a\x00\x01x", "QoS 3"),
        (b"\x38\x04\x00\x01ax", "DUP"),
        (b"\x30\x05\x00\x02\xc3\x28x", "UTF-8"),
        (b"\x30\x06\x00\x03a/#x", "wildcards"),
        (b"\x30\x06\x00\x03a/+x", "wildcards"),
        (b"\x30\x02\x00\x00", "empty"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
        (b"\x32\x04\x00\x01a\x00", "truncated"),
        (b"\x30\x01\x00", "truncated"),
        (b"\x40\x02\x00\x00", "packet id 0"),
        (b"\x40\x03\x00\x01\x00", "unexpected bytes"),
        (b"\xc0\x01\x00", "with a body"),
        (b"\x82\x02\x00\x01", "without topic filters"),
        (b"\x82\x08\x00\x01\x00\x03a#b\x00", "invalid topic filter"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "requested QoS"),
        (b"\xa2\x02\x00\x01", "without topic filters"),
        (b"\x90\x03\x00\x01\x03", "SUBACK return code"),
        (b"\x20\x02\x02\x00", "reserved CONNACK flags"),
        (b"\x20\x02\x00\x09", "return code"),
        (b"\x10\x0c\x00\x04MQTX\x04\x02\x00\x00\x00\x00", "protocol name"),
        (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x00\x00\x00", "reserved CONNECT flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x42\x00\x00\x00\x00", "password without user name"),
        (b"\x10\x0c\x00\x04MQTT\x04\x12\x00\x00\x00\x00", "without a will"),
        (b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x00\x00\x00\xff\xff", "unexpected bytes"),
        (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01\x00", "U\\+0000"),
    ],
)
def test_malformed_packets_raise_protocol_error(wire: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_all(wire)


def test_oversized_packet_is_refused_as_soon_as_its_length_is_known() -> None:
    decoder = PacketDecoder(max_packet_size=1024)
    decoder.feed(b"\x30\x80\x80\x04")  # announces 65 536 bytes, none of them sent yet
    with pytest.raises(ProtocolError, match="exceeds"):
        decoder.next_packet()


def test_packet_of_exactly_the_limit_is_accepted() -> None:
    publish = Publish("t", b"x" * 1018)
    assert len(publish.encode()) == 1024
    assert decode_all(publish.encode(), max_packet_size=1024) == [publish]


def test_incomplete_input_waits_for_more_bytes() -> None:
    decoder = PacketDecoder()
    decoder.feed(b"\x30\x80")
    assert decoder.next_packet() is None
    decoder.feed(b"\x01" + b"\x00\x01a" + b"x" * 125)
    assert decoder.next_packet() == Publish("a", b"x" * 125)


# -- fuzzing ------------------------------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_all(data, max_packet_size=256)


@settings(max_examples=500)
@given(packets, st.data())
def test_mutated_packets_only_ever_raise_protocol_error(
    packet: Packet, data: st.DataObject
) -> None:
    wire = bytearray(packet.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(wire)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(wire):
            wire.insert(position, data.draw(st.integers(0, 255)))
        elif action == "delete":
            del wire[position]
        else:
            wire[position] ^= 1 << data.draw(st.integers(0, 7))
    with contextlib.suppress(ProtocolError):
        decode_all(bytes(wire))
