"""Device payload codecs (mqtt-transport.md §3-§4, official-sdk.md §4.4-§4.5)."""

from __future__ import annotations

import contextlib
import struct
import zlib
from datetime import UTC, datetime

import bson
import pytest
from bson.binary import Binary
from bson.int64 import Int64
from hypothesis import given
from hypothesis import strategies as st

from astraea.core.interface import Mapping, ValueType
from astraea.core.payloads import (
    MAX_PAYLOAD_BYTES,
    MAX_PURGE_LIST_BYTES,
    UNSET,
    DataPayload,
    DeviceTopic,
    InvalidIntrospection,
    InvalidPurgeList,
    MalformedCapabilities,
    PayloadError,
    PayloadTooLarge,
    PurgeFormat,
    TopicKind,
    classify_topic,
    consumer_properties_topic,
    decode_capabilities,
    decode_data_payload,
    decode_introspection,
    decode_purge_list,
    device_topic,
    encode_object_payload,
    encode_purge_list,
    encode_value_payload,
)
from astraea.core.values import InvalidValueError

MOMENT = datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)


def sdk_purge_payload(text: str) -> bytes:
    """What the official SDK publishes on control/producer/properties."""
    raw = text.encode()
    return len(raw).to_bytes(4, "little") + zlib.compress(raw)


# data payloads


def test_value_and_timestamp() -> None:
    decoded = decode_data_payload(bson.encode({"v": 21.5, "t": MOMENT}))
    assert decoded == DataPayload(21.5, MOMENT)
    assert decoded.timestamp is not None and decoded.timestamp.tzinfo is not None


def test_metadata_is_ignored_and_timestamp_optional() -> None:
    assert decode_data_payload(bson.encode({"v": "x", "m": {"a": 1}})) == DataPayload("x")


def test_non_datetime_timestamp_is_ignored() -> None:
    assert decode_data_payload(bson.encode({"v": 1, "t": 1714557600000})) == DataPayload(1)


def test_int32_and_int64_both_decode_to_int() -> None:
    assert decode_data_payload(bson.encode({"v": 5})).value == 5
    value = decode_data_payload(bson.encode({"v": Int64(2**40)})).value
    assert isinstance(value, int) and value == 2**40


def test_object_aggregate_is_a_subdocument() -> None:
    decoded = decode_data_payload(bson.encode({"v": {"temp": 20.5, "hum": 40}}))
    assert decoded.value == {"temp": 20.5, "hum": 40}


def test_document_without_v_is_a_legacy_object() -> None:
    assert decode_data_payload(bson.encode({"temp": 1.5})) == DataPayload({"temp": 1.5})


@pytest.mark.parametrize(
    "payload", [b"", bson.encode({"v": b""}), bson.encode({"v": b"", "t": MOMENT})]
)
def test_unset_forms(payload: bytes) -> None:
    assert decode_data_payload(payload) == UNSET


def test_empty_binary_of_another_subtype_is_a_value() -> None:
    decoded = decode_data_payload(bson.encode({"v": Binary(b"", 5)}))
    assert isinstance(decoded.value, bytes) and bytes(decoded.value) == b""


@pytest.mark.parametrize(
    "payload",
    [b"\x00", b"not bson at all", bson.encode({"v": 1})[:-1], bson.encode({"v": 1}) + b"x"],
)
def test_undecodable(payload: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_data_payload(payload)
    assert caught.value.device_error == "undecodable_bson_payload"


def test_deeply_nested_document_is_undecodable_not_a_crash() -> None:
    depth = 5000
    # Build {"v": {"v": {...}}} bottom-up as raw bytes: the encoder itself refuses this depth.
    inner = b"\x05\x00\x00\x00\x00"
    for _ in range(depth):
        body = b"\x03v\x00" + inner + b"\x00"
        inner = struct.pack("<i", len(body) + 4) + body
    assert len(inner) < MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError):
        decode_data_payload(inner)


def test_oversized_payload() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        decode_data_payload(bson.encode({"v": "x" * MAX_PAYLOAD_BYTES}))
    assert caught.value.device_error == "value_size_exceeded"


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_payload_errors(payload: bytes) -> None:
    for decode in (
        decode_data_payload,
        decode_introspection,
        decode_capabilities,
        lambda data: decode_purge_list(data, PurgeFormat.ZLIB),
        lambda data: decode_purge_list(data, PurgeFormat.PLAINTEXT),
    ):
        with contextlib.suppress(PayloadError):
            decode(payload)


@given(st.binary(max_size=200))
def test_random_bytes_inside_a_valid_bson_frame(body: bytes) -> None:
    """Corrupt element data behind a plausible header reaches deeper decoder paths."""
    payload = struct.pack("<i", len(body) + 5) + body + b"\x00"
    with contextlib.suppress(PayloadError):
        decode_data_payload(payload)


# introspection


def test_introspection() -> None:
    assert decode_introspection(b"org.x.Values:1:2;org.x.Props:0:3") == {
        "org.x.Values": (1, 2),
        "org.x.Props": (0, 3),
    }


def test_empty_introspection() -> None:
    assert decode_introspection(b"") == {}


def test_later_entry_for_a_name_wins() -> None:
    assert decode_introspection(b"org.x.A:1:0;org.x.A:2:1") == {"org.x.A": (2, 1)}


@pytest.mark.parametrize(
    "payload",
    [
        b"org.x.A:1",
        b"org.x.A:1:0:3",
        b"org.x.A:1:0;",
        b";org.x.A:1:0",
        b"org.x.A:-1:0",
        b"org.x.A:+1:0",
        b"org.x.A:1:x",
        b"org.x.A: 1:0",
        b"org.x.A:1:99999999999",
        b"1org.x.A:1:0",
        b"org x.A:1:0",
        b":1:0",
        b"org.x.\xff:1:0",
        b"org.x." + b"a" * 200 + b":1:0",
    ],
)
def test_invalid_introspection(payload: bytes) -> None:
    with pytest.raises(InvalidIntrospection) as caught:
        decode_introspection(payload)
    assert caught.value.device_error == "invalid_introspection"


# purge-properties lists


def test_sdk_purge_list_with_little_endian_header() -> None:
    payload = sdk_purge_payload("org.x.Props/a/b;org.x.Props/c;org.x.Other/d")
    assert decode_purge_list(payload, PurgeFormat.ZLIB) == {
        "org.x.Props": {"/a/b", "/c"},
        "org.x.Other": {"/d"},
    }


def test_sdk_empty_purge_list_is_zlib_of_empty_string() -> None:
    payload = sdk_purge_payload("")
    assert payload.hex() == "00000000789c030000000001"
    assert decode_purge_list(payload, PurgeFormat.ZLIB) == {}


def test_four_zero_bytes_are_an_empty_list() -> None:
    assert decode_purge_list(b"\x00\x00\x00\x00", PurgeFormat.ZLIB) == {}


def test_header_value_is_ignored() -> None:
    payload = b"\xff\xff\xff\xff" + zlib.compress(b"org.x.P/a")
    assert decode_purge_list(payload, PurgeFormat.ZLIB) == {"org.x.P": {"/a"}}


def test_plaintext_purge_list() -> None:
    assert decode_purge_list(b"org.x.P/a;org.x.P/b/c", PurgeFormat.PLAINTEXT) == {
        "org.x.P": {"/a", "/b/c"}
    }


def test_entries_without_slash_are_ignored() -> None:
    assert decode_purge_list(b"org.x.P;;org.x.Q/a", PurgeFormat.PLAINTEXT) == {"org.x.Q": {"/a"}}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x00garbage",
        b"\x00\x00\x00\x00" + zlib.compress(b"org.x.P/a")[:-3],
        b"\x00\x00\x00\x00" + zlib.compress("org.x.P/\udcff".encode("utf-8", "surrogateescape")),
    ],
)
def test_invalid_zlib_purge_list(payload: bytes) -> None:
    with pytest.raises(InvalidPurgeList) as caught:
        decode_purge_list(payload, PurgeFormat.ZLIB)
    assert caught.value.device_error == "purge_properties_error"


def test_inflation_is_capped() -> None:
    bomb = b"\x00\x00\x00\x00" + zlib.compress(b"a" * (MAX_PURGE_LIST_BYTES + 1), 9)
    assert len(bomb) < 20_000
    with pytest.raises(InvalidPurgeList):
        decode_purge_list(bomb, PurgeFormat.ZLIB)


def test_inflation_up_to_the_cap_is_accepted() -> None:
    text = b"org.x.P/a;" + b"x" * (MAX_PURGE_LIST_BYTES - 10)
    payload = b"\x00\x00\x00\x00" + zlib.compress(text)
    assert decode_purge_list(payload, PurgeFormat.ZLIB) == {"org.x.P": {"/a"}}


def test_encoded_purge_list_has_big_endian_header_and_zlib_stream() -> None:
    payload = encode_purge_list([("org.x.S", "/a/b"), ("org.x.S", "/c")])
    text = b"org.x.S/a/b;org.x.S/c"
    assert payload[:4] == struct.pack(">I", len(text))
    assert zlib.decompress(payload[4:]) == text
    assert decode_purge_list(payload, PurgeFormat.ZLIB) == {"org.x.S": {"/a/b", "/c"}}


def test_encoded_empty_purge_list_is_never_empty() -> None:
    payload = encode_purge_list([])
    assert payload[:4] == b"\x00\x00\x00\x00" and zlib.decompress(payload[4:]) == b""


def test_encoded_plaintext_purge_list() -> None:
    assert encode_purge_list([("org.x.S", "/a")], PurgeFormat.PLAINTEXT) == b"org.x.S/a"


# capabilities


def test_capabilities() -> None:
    document = {"purge_properties_compression_format": "plaintext", "other": 1}
    assert decode_capabilities(bson.encode(document)) is PurgeFormat.PLAINTEXT
    assert decode_capabilities(bson.encode({})) is PurgeFormat.ZLIB


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"zlib",
        bson.encode({"purge_properties_compression_format": "gzip"}),
        bson.encode({"purge_properties_compression_format": 1}),
    ],
)
def test_malformed_capabilities(payload: bytes) -> None:
    with pytest.raises(MalformedCapabilities) as caught:
        decode_capabilities(payload)
    assert caught.value.device_error == "malformed_capabilities_message"


# server -> device payloads


def test_integral_double_is_sent_as_bson_double() -> None:
    payload = encode_value_payload(ValueType.DOUBLE, 2)
    assert payload == bson.encode({"v": 2.0})
    assert payload[4] == 0x01


def test_double_array_elements_are_doubles() -> None:
    assert encode_value_payload(ValueType.DOUBLEARRAY, [1, 2.5]) == bson.encode({"v": [1.0, 2.5]})


def test_blob_is_generic_binary() -> None:
    payload = encode_value_payload(ValueType.BINARYBLOB, b"\x01\x02")
    assert payload[4] == 0x05
    assert payload[4 + 2 + 4] == 0x00  # subtype after type, key "v\0" and length


def test_integer_sizes_and_datetimes() -> None:
    assert encode_value_payload(ValueType.LONGINTEGER, 5)[4] == 0x10
    assert encode_value_payload(ValueType.LONGINTEGER, 2**40)[4] == 0x12
    payload = encode_value_payload(ValueType.DATETIME, MOMENT)
    assert payload[4] == 0x09
    assert decode_data_payload(payload).value == MOMENT


def test_encoding_refuses_values_the_mapping_cannot_hold() -> None:
    with pytest.raises(InvalidValueError):
        encode_value_payload(ValueType.INTEGER, "x")


def test_object_payload() -> None:
    mappings = {
        "temp": Mapping("/%{room}/temp", ValueType.DOUBLE),
        "count": Mapping("/%{room}/count", ValueType.INTEGER),
    }
    payload = encode_object_payload(mappings, {"temp": 20, "count": 3})
    assert payload == bson.encode({"v": {"temp": 20.0, "count": 3}})


# topics


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("", DeviceTopic(TopicKind.INTROSPECTION)),
        ("/capabilities", DeviceTopic(TopicKind.CAPABILITIES)),
        ("/control/emptyCache", DeviceTopic(TopicKind.EMPTY_CACHE)),
        ("/control/producer/properties", DeviceTopic(TopicKind.PRODUCER_PROPERTIES)),
        (
            "/control/consumer/properties",
            DeviceTopic(TopicKind.CONTROL, path="/consumer/properties"),
        ),
        ("/control/keyAgreement/0", DeviceTopic(TopicKind.CONTROL, path="/keyAgreement/0")),
        ("/control", DeviceTopic(TopicKind.CONTROL, path="/")),
        ("/org.x.Values/a/b", DeviceTopic(TopicKind.DATA, "org.x.Values", "/a/b")),
        ("/org.x.Obj", DeviceTopic(TopicKind.DATA, "org.x.Obj", "/")),
        ("/org.x.V/a//b", DeviceTopic(TopicKind.DATA, "org.x.V", "/a//b")),
        ("/capabilities/x", DeviceTopic(TopicKind.DATA, "capabilities", "/x")),
    ],
)
def test_classify_topic(suffix: str, expected: DeviceTopic) -> None:
    assert classify_topic(suffix) == expected


def test_topic_suffix_must_start_with_a_level_separator() -> None:
    with pytest.raises(ValueError):
        classify_topic("org.x.V/a")


def test_outbound_topics() -> None:
    assert device_topic("r", "dev", "org.x.S", "/a/b") == "r/dev/org.x.S/a/b"
    assert device_topic("r", "dev", "org.x.S", "/") == "r/dev/org.x.S"
    assert consumer_properties_topic("r", "dev") == "r/dev/control/consumer/properties"
