"""MQTT 3.1.1 packet codec (sans-IO): packet values, their encoding, an incremental decoder.

Everything malformed a peer can send surfaces as one exception, `ProtocolError`, whose
`reason` says what was wrong; the connection that produced it must be closed. Encoding
trusts its input (the server builds its own packets) and only guards wire-format limits.

Packets are plain slotted dataclasses rather than frozen ones: a PUBLISH is built per
message on the hot path and frozen construction costs about four times as much. Treat
them as values all the same.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from astraea.core.mqtt_topics import is_valid_topic_filter, is_valid_topic_name

#: The reference broker's per-message limit (65 535 bytes) plus room for topic and headers.
DEFAULT_MAX_PACKET_SIZE = 65_535 + 4_096

_MAX_REMAINING_LENGTH = 268_435_455
_MAX_FIELD_LENGTH = 65_535
_PROTOCOL_NAME = "MQTT"
_PROTOCOL_LEVEL_311 = 4
_ID_ONLY = struct.Struct("!BBH")
_U16 = struct.Struct("!H")


class ProtocolError(Exception):
    """The peer broke MQTT 3.1.1; the connection that produced it must be closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PacketType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnectReturnCode(enum.IntEnum):
    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


#: SUBACK return code for a refused topic filter.
SUBSCRIPTION_FAILURE = 0x80
_SUBACK_CODES = frozenset((0, 1, 2, SUBSCRIPTION_FAILURE))


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(slots=True)
class Connect:
    client_id: str
    keepalive: int = 0
    clean_session: bool = True
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    protocol_level: int = _PROTOCOL_LEVEL_311

    def encode(self) -> bytes:
        flags = 0x02 if self.clean_session else 0
        fields = [_string(self.client_id)]
        if self.will is not None:
            flags |= 0x04 | (self.will.qos << 3) | (0x20 if self.will.retain else 0)
            fields += (_string(self.will.topic), _binary(self.will.payload))
        if self.username is not None:
            flags |= 0x80
            fields.append(_string(self.username))
        if self.password is not None:
            flags |= 0x40
            fields.append(_binary(self.password))
        variable_header = _string(_PROTOCOL_NAME) + bytes((self.protocol_level, flags))
        return _frame(0x10, variable_header + _U16.pack(self.keepalive) + b"".join(fields))


@dataclass(slots=True)
class ConnAck:
    return_code: ConnectReturnCode = ConnectReturnCode.ACCEPTED
    session_present: bool = False

    def encode(self) -> bytes:
        return bytes((0x20, 2, int(self.session_present), self.return_code))


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0

    def encode(self) -> bytes:
        first = 0x30 | (self.dup << 3) | (self.qos << 1) | self.retain
        packet_id = _U16.pack(self.packet_id) if self.qos else b""
        return _frame(first, _string(self.topic) + packet_id + self.payload)


@dataclass(slots=True)
class PubAck:
    packet_id: int

    def encode(self) -> bytes:
        return _ID_ONLY.pack(0x40, 2, self.packet_id)


@dataclass(slots=True)
class PubRec:
    packet_id: int

    def encode(self) -> bytes:
        return _ID_ONLY.pack(0x50, 2, self.packet_id)


@dataclass(slots=True)
class PubRel:
    packet_id: int

    def encode(self) -> bytes:
        return _ID_ONLY.pack(0x62, 2, self.packet_id)


@dataclass(slots=True)
class PubComp:
    packet_id: int

    def encode(self) -> bytes:
        return _ID_ONLY.pack(0x70, 2, self.packet_id)


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]

    def encode(self) -> bytes:
        body = b"".join(_string(topic) + bytes((qos,)) for topic, qos in self.subscriptions)
        return _frame(0x82, _U16.pack(self.packet_id) + body)


@dataclass(slots=True)
class SubAck:
    packet_id: int
    return_codes: tuple[int, ...]

    def encode(self) -> bytes:
        return _frame(0x90, _U16.pack(self.packet_id) + bytes(self.return_codes))


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: tuple[str, ...]

    def encode(self) -> bytes:
        body = b"".join(_string(topic_filter) for topic_filter in self.topic_filters)
        return _frame(0xA2, _U16.pack(self.packet_id) + body)


@dataclass(slots=True)
class UnsubAck:
    packet_id: int

    def encode(self) -> bytes:
        return _ID_ONLY.pack(0xB0, 2, self.packet_id)


@dataclass(slots=True)
class PingReq:
    def encode(self) -> bytes:
        return b"\xc0\x00"


@dataclass(slots=True)
class PingResp:
    def encode(self) -> bytes:
        return b"\xd0\x00"


@dataclass(slots=True)
class Disconnect:
    def encode(self) -> bytes:
        return b"\xe0\x00"


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


_Decoder = Callable[[bytes], Packet]


class PacketDecoder:
    """Turns a byte stream into packets, one `next_packet()` at a time.

    Pull-style so the caller decides how many packets to hold: bytes it has not asked
    for stay compact in the buffer. A packet announcing more than `max_packet_size`
    bytes is refused as soon as its length is known, so the buffer never grows past
    one packet plus whatever the caller fed beyond it.
    """

    __slots__ = ("_buffer", "_max_packet_size")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._buffer = bytearray()
        self._max_packet_size = max_packet_size

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | memoryview) -> None:
        self._buffer += data

    def next_packet(self) -> Packet | None:
        """The next complete packet, or None until more bytes arrive."""
        buffer = self._buffer
        available = len(buffer)
        if available < 2:
            return None
        length = 0
        shift = 0
        position = 1
        while True:
            if position >= available:
                return None
            byte = buffer[position]
            length |= (byte & 0x7F) << shift
            position += 1
            if byte < 0x80:
                break
            if position == 5:
                raise ProtocolError("remaining length longer than 4 bytes")
            shift += 7
        end = position + length
        if end > self._max_packet_size:
            raise ProtocolError(f"packet of {end} bytes exceeds the {self._max_packet_size} limit")
        if available < end:
            return None
        first = buffer[0]
        body = bytes(buffer[position:end])
        del buffer[:end]
        return decode_packet(first, body)


def decode_packet(first_byte: int, body: bytes) -> Packet:
    """Decode one packet from its first header byte and its body (after the length)."""
    packet_type = first_byte >> 4
    flags = first_byte & 0x0F
    if packet_type == PacketType.PUBLISH:
        return _decode_publish(flags, body)
    expected_flags = 0x02 if packet_type in _FLAGGED_TYPES else 0
    if flags != expected_flags:
        raise ProtocolError(f"reserved flags {flags:#x} on packet type {packet_type}")
    decoder = _DECODERS.get(packet_type)
    if decoder is None:
        raise ProtocolError(f"reserved packet type {packet_type}")
    return decoder(body)


def _decode_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    dup = bool(flags & 0x08)
    if dup and not qos:
        raise ProtocolError("PUBLISH QoS 0 with DUP set")
    if len(body) < 2:
        raise ProtocolError("truncated PUBLISH topic")
    topic_end = 2 + ((body[0] << 8) | body[1])
    payload_start = topic_end + 2 if qos else topic_end
    if len(body) < payload_start:
        raise ProtocolError("truncated PUBLISH")
    try:
        topic = body[2:topic_end].decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError("PUBLISH topic is not valid UTF-8") from exc
    if not is_valid_topic_name(topic):
        raise ProtocolError("PUBLISH topic is empty or has wildcards or U+0000")
    packet_id = 0
    if qos:
        packet_id = (body[topic_end] << 8) | body[topic_end + 1]
        if not packet_id:
            raise ProtocolError("packet id 0")
    return Publish(topic, body[payload_start:], qos, bool(flags & 0x01), dup, packet_id)


class _Reader:
    """Bounds-checked cursor over a packet body; every overrun is a ProtocolError."""

    __slots__ = ("_data", "_position")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    @property
    def at_end(self) -> bool:
        return self._position >= len(self._data)

    def byte(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        high, low = self._take(2)
        return (high << 8) | low

    def packet_id(self) -> int:
        packet_id = self.u16()
        if not packet_id:
            raise ProtocolError("packet id 0")
        return packet_id

    def binary(self) -> bytes:
        return self._take(self.u16())

    def string(self) -> str:
        try:
            text = self.binary().decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not valid UTF-8") from exc
        if "\x00" in text:
            raise ProtocolError("string contains U+0000")
        return text

    def end(self) -> None:
        if not self.at_end:
            raise ProtocolError("unexpected bytes at the end of the packet")

    def _take(self, count: int) -> bytes:
        start = self._position
        if start + count > len(self._data):
            raise ProtocolError("truncated packet")
        self._position = start + count
        return self._data[start : start + count]


def _decode_connect(body: bytes) -> Connect:
    reader = _Reader(body)
    if reader.string() != _PROTOCOL_NAME:
        raise ProtocolError("unsupported protocol name")
    protocol_level = reader.byte()
    flags = reader.byte()
    if flags & 0x01:
        raise ProtocolError("reserved CONNECT flag set")
    keepalive = reader.u16()
    client_id = reader.string()
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos == 3:
            raise ProtocolError("will QoS 3")
        will_topic = reader.string()
        if not is_valid_topic_name(will_topic):
            raise ProtocolError("will topic is empty or has wildcards or U+0000")
        will = Will(will_topic, reader.binary(), will_qos, bool(flags & 0x20))
    elif flags & 0x38:
        raise ProtocolError("will QoS or retain set without a will")
    username = reader.string() if flags & 0x80 else None
    if flags & 0x40 and username is None:
        raise ProtocolError("password without user name")
    password = reader.binary() if flags & 0x40 else None
    reader.end()
    clean_session = bool(flags & 0x02)
    return Connect(client_id, keepalive, clean_session, username, password, will, protocol_level)


def _decode_connack(body: bytes) -> ConnAck:
    reader = _Reader(body)
    flags = reader.byte()
    code = reader.byte()
    reader.end()
    if flags & 0xFE:
        raise ProtocolError("reserved CONNACK flags set")
    try:
        return_code = ConnectReturnCode(code)
    except ValueError as exc:
        raise ProtocolError(f"unknown CONNACK return code {code}") from exc
    return ConnAck(return_code, bool(flags))


def _packet_id_only(body: bytes) -> int:
    reader = _Reader(body)
    packet_id = reader.packet_id()
    reader.end()
    return packet_id


def _decode_subscribe(body: bytes) -> Subscribe:
    reader = _Reader(body)
    packet_id = reader.packet_id()
    subscriptions = []
    while not reader.at_end:
        topic_filter = _topic_filter(reader)
        qos = reader.byte()
        if qos > 2:
            raise ProtocolError("requested QoS byte is invalid")
        subscriptions.append((topic_filter, qos))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return Subscribe(packet_id, tuple(subscriptions))


def _decode_suback(body: bytes) -> SubAck:
    reader = _Reader(body)
    packet_id = reader.packet_id()
    codes = []
    while not reader.at_end:
        code = reader.byte()
        if code not in _SUBACK_CODES:
            raise ProtocolError(f"invalid SUBACK return code {code:#x}")
        codes.append(code)
    if not codes:
        raise ProtocolError("SUBACK without return codes")
    return SubAck(packet_id, tuple(codes))


def _decode_unsubscribe(body: bytes) -> Unsubscribe:
    reader = _Reader(body)
    packet_id = reader.packet_id()
    topic_filters = []
    while not reader.at_end:
        topic_filters.append(_topic_filter(reader))
    if not topic_filters:
        raise ProtocolError("UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id, tuple(topic_filters))


def _topic_filter(reader: _Reader) -> str:
    topic_filter = reader.string()
    if not is_valid_topic_filter(topic_filter):
        raise ProtocolError(f"invalid topic filter {topic_filter!r}")
    return topic_filter


def _no_body(packet_class: type[PingReq | PingResp | Disconnect]) -> _Decoder:
    def decode(body: bytes) -> Packet:
        if body:
            raise ProtocolError(f"{packet_class.__name__} with a body")
        return packet_class()

    return decode


_FLAGGED_TYPES = frozenset((PacketType.PUBREL, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE))
_DECODERS: dict[int, _Decoder] = {
    PacketType.CONNECT: _decode_connect,
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBACK: lambda body: PubAck(_packet_id_only(body)),
    PacketType.PUBREC: lambda body: PubRec(_packet_id_only(body)),
    PacketType.PUBREL: lambda body: PubRel(_packet_id_only(body)),
    PacketType.PUBCOMP: lambda body: PubComp(_packet_id_only(body)),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: lambda body: UnsubAck(_packet_id_only(body)),
    PacketType.PINGREQ: _no_body(PingReq),
    PacketType.PINGRESP: _no_body(PingResp),
    PacketType.DISCONNECT: _no_body(Disconnect),
}


def _frame(first_byte: int, body: bytes) -> bytes:
    length = len(body)
    if length > _MAX_REMAINING_LENGTH:
        raise ValueError(f"packet body of {length} bytes is too large for MQTT")
    header = bytearray((first_byte,))
    while True:
        digit = length & 0x7F
        length >>= 7
        if length:
            header.append(digit | 0x80)
        else:
            header.append(digit)
            return bytes(header) + body


def _binary(data: bytes) -> bytes:
    if len(data) > _MAX_FIELD_LENGTH:
        raise ValueError(f"field of {len(data)} bytes is too long for MQTT")
    return _U16.pack(len(data)) + data


def _string(text: str) -> bytes:
    return _binary(text.encode())
