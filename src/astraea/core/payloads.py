"""What devices and Astraea put on the wire under a device's base topic (sans-IO).

Device → Astraea: data payloads (BSON `{"v": value, "t": timestamp}`), the introspection
string, the purge-properties list and the capabilities document, each decoded with a hard
bound on the work it may cause. Astraea → device: data payloads and the purge-properties list,
encoded the way the official SDK expects them (exact BSON types, zlib stream always present).

Every decoding failure is a `PayloadError` whose `device_error` is Astarte's error name, so the
ingestion pipeline reports it without knowing which codec failed.
"""

from __future__ import annotations

import enum
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import bson
from bson.codec_options import CodecOptions

from astraea.core.interface import Mapping, ValueType
from astraea.core.interface_parser import _NAME as _INTERFACE_NAME
from astraea.core.interface_parser import NAME_MAX_LENGTH
from astraea.core.values import validate_object_value, validate_value

# The broker's cap on a whole MQTT message: no device payload can be larger.
MAX_PAYLOAD_BYTES = 65_535
# Astarte inflates at most this much of a purge-properties list.
MAX_PURGE_LIST_BYTES = 10 * 1024 * 1024
_VERSION_MAX = 2**31 - 1

_CODEC: CodecOptions[dict[str, object]] = CodecOptions(tz_aware=True, tzinfo=UTC)
_VERSION = re.compile(r"[0-9]{1,10}", re.ASCII)
_ZLIB_EMPTY_LIST = b"\x00\x00\x00\x00"


class PayloadError(ValueError):
    """A payload its codec refuses; `device_error` is the Astarte device error to report."""

    device_error = "undecodable_bson_payload"


class PayloadTooLarge(PayloadError):
    device_error = "value_size_exceeded"


class InvalidIntrospection(PayloadError):
    device_error = "invalid_introspection"


class InvalidPurgeList(PayloadError):
    device_error = "purge_properties_error"


class MalformedCapabilities(PayloadError):
    device_error = "malformed_capabilities_message"


class PurgeFormat(enum.StrEnum):
    """How a device wants purge-properties lists: the `purge_properties_compression_format`."""

    ZLIB = "zlib"
    PLAINTEXT = "plaintext"


_PURGE_FORMATS = frozenset(purge_format.value for purge_format in PurgeFormat)


@dataclass(frozen=True, slots=True)
class DataPayload:
    """A decoded data message: `value` None means unset; `timestamp` is the optional `t`."""

    value: object | None
    timestamp: datetime | None = None


UNSET = DataPayload(None)


def decode_data_payload(payload: bytes) -> DataPayload:
    """Astarte's reading of a data payload (mqtt-transport.md §4).

    Empty payloads and an empty generic binary `v` unset; a document without `v` is a legacy
    object aggregate (the whole document); `t` counts only when it is a BSON datetime.
    """
    if not payload:
        return UNSET
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    document = _decode_document(payload, PayloadError)
    if "v" not in document:
        return DataPayload(document)
    value = document["v"]
    if type(value) is bytes and not value:
        return UNSET
    timestamp = document.get("t")
    return DataPayload(value, timestamp if isinstance(timestamp, datetime) else None)


def decode_introspection(payload: bytes) -> dict[str, tuple[int, int]]:
    """`name:major:minor;...` as name → (major, minor); the empty string declares nothing.

    A later entry for the same name replaces an earlier one, as in Astarte.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidIntrospection("introspection too large")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidIntrospection("introspection is not UTF-8") from None
    introspection: dict[str, tuple[int, int]] = {}
    if not text:
        return introspection
    for entry in text.split(";"):
        parts = entry.split(":")
        if len(parts) != 3:
            raise InvalidIntrospection(f"not name:major:minor: {entry!r}")
        name, major, minor = parts
        if len(name) > NAME_MAX_LENGTH or not _INTERFACE_NAME.fullmatch(name):
            raise InvalidIntrospection(f"invalid interface name: {name!r}")
        introspection[name] = (_version(major), _version(minor))
    return introspection


def _version(text: str) -> int:
    if not _VERSION.fullmatch(text) or int(text) > _VERSION_MAX:
        raise InvalidIntrospection(f"invalid interface version: {text!r}")
    return int(text)


def decode_purge_list(payload: bytes, purge_format: PurgeFormat) -> dict[str, set[str]]:
    """A purge-properties list as interface → paths still set.

    zlib form: the 4-byte length header is ignored (the SDK writes it little-endian, Astarte
    big-endian) and inflation stops at `MAX_PURGE_LIST_BYTES`. Exactly four zero bytes are an
    empty list. Entries without `/` are ignored, as in Astarte.
    """
    if purge_format is PurgeFormat.PLAINTEXT:
        raw = payload
    elif payload == _ZLIB_EMPTY_LIST:
        raw = b""
    elif len(payload) < 4:
        raise InvalidPurgeList("purge list shorter than its 4-byte header")
    else:
        raw = _inflate(payload[4:])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPurgeList("purge list is not UTF-8") from None
    listed: dict[str, set[str]] = {}
    for entry in text.split(";"):
        interface, slash, rest = entry.partition("/")
        if slash:
            listed.setdefault(interface, set()).add("/" + rest)
    return listed


def _inflate(stream: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(stream, MAX_PURGE_LIST_BYTES)
    except zlib.error:
        raise InvalidPurgeList("purge list is not a zlib stream") from None
    if inflater.unconsumed_tail:
        raise InvalidPurgeList(f"purge list inflates beyond {MAX_PURGE_LIST_BYTES} bytes")
    if not inflater.eof:
        raise InvalidPurgeList("purge list zlib stream is truncated")
    return raw


def encode_purge_list(
    entries: Iterable[tuple[str, str]], purge_format: PurgeFormat = PurgeFormat.ZLIB
) -> bytes:
    """The list of (interface, path) pairs; zlib form always has header and stream, even when
    empty, because the SDK inflates whatever follows the header."""
    raw = ";".join(interface + path for interface, path in entries).encode("utf-8")
    if purge_format is PurgeFormat.PLAINTEXT:
        return raw
    return struct.pack(">I", len(raw)) + zlib.compress(raw)


def decode_capabilities(payload: bytes) -> PurgeFormat:
    """The purge-list format a capabilities document asks for (zlib when it does not say);
    other keys are ignored, as Astarte's cast does."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MalformedCapabilities(f"capabilities larger than {MAX_PAYLOAD_BYTES} bytes")
    document = _decode_document(payload, MalformedCapabilities)
    value = document.get("purge_properties_compression_format", PurgeFormat.ZLIB.value)
    if not isinstance(value, str) or value not in _PURGE_FORMATS:
        raise MalformedCapabilities(f"unknown purge_properties_compression_format {value!r}")
    return PurgeFormat(value)


def _decode_document(payload: bytes, error: type[PayloadError]) -> dict[str, object]:
    try:
        document: dict[str, object] = bson.decode(payload, _CODEC)
    except Exception as exc:
        # The C decoder's failures are not a closed set (InvalidBSON, RecursionError on deep
        # nesting, OverflowError on dates out of range, ...): all mean "not a usable document".
        raise error(f"undecodable BSON: {exc}") from None
    return document


def encode_value_payload(value_type: ValueType, value: object) -> bytes:
    """`{"v": value}` with the exact BSON types the SDK checks: doubles stay doubles when
    integral, blobs are generic binaries, longintegers int32 or int64 by size.

    Raises `InvalidValueError` when the mapping cannot hold `value`.
    """
    return bson.encode({"v": validate_value(value_type, value)})


def encode_object_payload(mappings: dict[str, Mapping], value: dict[str, object]) -> bytes:
    """An object aggregate `{"v": {key: value}}`; `mappings` keyed by `object_key`."""
    return bson.encode({"v": validate_object_value(mappings, value)})


class TopicKind(enum.Enum):
    INTROSPECTION = "introspection"
    EMPTY_CACHE = "empty_cache"
    PRODUCER_PROPERTIES = "producer_properties"
    CAPABILITIES = "capabilities"
    CONTROL = "control"  # any other control path: Astarte's unexpected_control_message
    DATA = "data"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A device publish topic below `<realm>/<device_id>`: data carries interface and path,
    other control messages their control path."""

    kind: TopicKind
    interface: str = ""
    path: str = ""


_FIXED_TOPICS = {
    "": DeviceTopic(TopicKind.INTROSPECTION),
    "/capabilities": DeviceTopic(TopicKind.CAPABILITIES),
    "/control/emptyCache": DeviceTopic(TopicKind.EMPTY_CACHE),
    "/control/producer/properties": DeviceTopic(TopicKind.PRODUCER_PROPERTIES),
}


def classify_topic(suffix: str) -> DeviceTopic:
    """Routes a publish by what follows `<realm>/<device_id>` in its topic ("" or "/...").

    As in Astarte's broker plugin, `B/iface` alone is data on path `/` (objects at the root).
    """
    fixed = _FIXED_TOPICS.get(suffix)
    if fixed is not None:
        return fixed
    if not suffix.startswith("/"):
        raise ValueError(f"not a device topic suffix: {suffix!r}")
    interface, _, rest = suffix[1:].partition("/")
    if interface == "control":
        return DeviceTopic(TopicKind.CONTROL, path="/" + rest)
    return DeviceTopic(TopicKind.DATA, interface, "/" + rest)


def device_topic(realm: str, device_id: str, interface: str, path: str) -> str:
    """The topic of a data message to or from a device; path `/` is the interface itself."""
    base = f"{realm}/{device_id}/{interface}"
    return base if path == "/" else base + path


def consumer_properties_topic(realm: str, device_id: str) -> str:
    return f"{realm}/{device_id}/control/consumer/properties"
