import base64
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astraea.core.device_id import (
    ExtendedIdNotAllowed,
    InvalidDeviceId,
    canonical_device_id,
    decode_device_id,
    device_id_from_uuid,
    device_id_to_uuid,
    encode_device_id,
    is_valid_device_id,
    namespaced_device_id,
    random_device_id,
)

# From the Astarte documentation (astartectl utils device-id to-uuid); its last character
# carries non-zero padding bits, so it is valid but not canonical.
DOC_ID = "k3oPTXaGGGGGGGGGGGGGGG"
DOC_UUID = uuid.UUID("937a0f4d-7686-1861-8618-618618618618")
DOC_CANONICAL = "k3oPTXaGGGGGGGGGGGGGGA"

# The URL-safe alphabet plus the characters most likely to slip through a lax decoder.
_NEAR_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789-_=+/ \n"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_decodes_canonical_id() -> None:
    raw = bytes(range(16))
    assert decode_device_id(_b64(raw)) == raw
    assert len(_b64(raw)) == 22


def test_decodes_url_safe_alphabet() -> None:
    raw = b"\xfb\xff\xbf" * 5 + b"\xfe"
    device_id = _b64(raw)
    assert "-" in device_id and "_" in device_id
    assert decode_device_id(device_id) == raw


def test_documentation_example_and_canonical_form() -> None:
    assert device_id_to_uuid(DOC_ID) == DOC_UUID
    assert canonical_device_id(DOC_ID) == DOC_CANONICAL
    assert encode_device_id(decode_device_id(DOC_ID)) == DOC_CANONICAL
    assert decode_device_id(DOC_ID) == decode_device_id(DOC_CANONICAL)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "AAAAAAAAAAAAAAAAAAAAAA==",  # padded
        "AAAAAAAAAAAAAAAAAAAAA=",
        "AAAAAAAAAAAAAAAAAAAA+A",  # standard, not URL-safe, alphabet
        "AAAAAAAAAAAAAAAAAAAA/A",
        "AAAAAAAAAAAAAAAAAAAA A",
        "AAAAAAAAAAAAAAAAAAAAAA\n",
        "AAAAAAAAAAAAAAAAAAAAAé",
        "AAAAAAAAAAAAAAAAAAAAA",  # 15 bytes
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAA",  # 25 chars: not a base64 length
    ],
)
def test_rejects_invalid_ids(bad: str) -> None:
    with pytest.raises(InvalidDeviceId) as info:
        decode_device_id(bad)
    assert not isinstance(info.value, ExtendedIdNotAllowed)
    assert not is_valid_device_id(bad)
    with pytest.raises(InvalidDeviceId):
        decode_device_id(bad, allow_extended=True)


@pytest.mark.parametrize("extra", [1, 2, 16, 100])
def test_extended_ids(extra: int) -> None:
    head = uuid.uuid4().bytes
    extended = _b64(head + bytes(range(extra)))
    with pytest.raises(ExtendedIdNotAllowed, match="too long"):
        decode_device_id(extended)
    assert not is_valid_device_id(extended)
    assert decode_device_id(extended, allow_extended=True) == head
    assert canonical_device_id(extended, allow_extended=True) == _b64(head)


def test_extended_id_is_an_invalid_device_id() -> None:
    assert issubclass(ExtendedIdNotAllowed, InvalidDeviceId)
    assert issubclass(InvalidDeviceId, ValueError)


def test_encode_requires_16_bytes() -> None:
    with pytest.raises(ValueError):
        encode_device_id(b"\x00" * 15)
    with pytest.raises(ValueError):
        encode_device_id(b"\x00" * 17)


def test_random_ids_are_uuid4_shaped_and_distinct() -> None:
    ids = {random_device_id() for _ in range(50)}
    assert len(ids) == 50
    for device_id in ids:
        assert len(device_id) == 22
        assert is_valid_device_id(device_id)
        assert device_id_to_uuid(device_id).version == 4


def test_namespaced_matches_known_uuid5() -> None:
    # uuid5(NAMESPACE_DNS, "python.org") is the value quoted in Python's uuid documentation.
    device_id = namespaced_device_id(uuid.NAMESPACE_DNS, "python.org")
    assert device_id == "iGMT4TuKU3KbkAya7hmeXQ"
    assert device_id_to_uuid(device_id) == uuid.UUID("886313e1-3b8a-5372-9b90-0c9aee199e5d")


@given(st.uuids(), st.text())
def test_namespaced_matches_sdk_generate_device_id(namespace: uuid.UUID, data: str) -> None:
    # The device SDK computes urlsafe_b64encode(uuid5(namespace, data).bytes) without "=".
    expected = base64.urlsafe_b64encode(uuid.uuid5(namespace, data).bytes).replace(b"=", b"")
    assert namespaced_device_id(namespace, data) == expected.decode()


@given(st.uuids())
def test_uuid_round_trip(u: uuid.UUID) -> None:
    device_id = device_id_from_uuid(u)
    assert len(device_id) == 22
    assert device_id_to_uuid(device_id) == u
    assert device_id_from_uuid(device_id_to_uuid(device_id)) == device_id


@given(st.binary(min_size=16, max_size=16))
def test_canonical_round_trip(raw: bytes) -> None:
    device_id = encode_device_id(raw)
    assert decode_device_id(device_id) == raw
    assert canonical_device_id(device_id) == device_id


@given(st.binary(min_size=16, max_size=64))
def test_every_long_enough_url_safe_encoding_decodes(raw: bytes) -> None:
    assert decode_device_id(_b64(raw), allow_extended=True) == raw[:16]


@given(
    st.text()
    | st.text(alphabet=_NEAR_ALPHABET)
    | st.text(alphabet=_NEAR_ALPHABET, min_size=18, max_size=30)
)
def test_decode_only_raises_invalid_device_id(s: str) -> None:
    for allow_extended in (False, True):
        try:
            raw = decode_device_id(s, allow_extended=allow_extended)
        except InvalidDeviceId:
            continue
        assert len(raw) == 16
        assert is_valid_device_id(s) or allow_extended
