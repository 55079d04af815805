"""Astarte device ids: 128-bit identities written as unpadded URL-safe base64.

Every service meets device ids on the wire, so the parsing rules live here once: an id
decodes to at least 16 bytes, and only the first 16 bytes identify the device. Longer
("extended") ids are accepted only where Astarte accepts them (Pairing `hw_id`, broker CN);
every other caller gets `ExtendedIdNotAllowed`. Encoding always yields the canonical
22-character form, so non-canonical spellings (e.g. stray bits in the last character)
collapse onto one identity.
"""

from __future__ import annotations

import base64
import re
import uuid

DEVICE_ID_BYTES = 16

_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class InvalidDeviceId(ValueError):
    """Astarte's `invalid_device_id`: not unpadded base64url, or fewer than 16 bytes."""


class ExtendedIdNotAllowed(InvalidDeviceId):
    """Astarte's `extended_id_not_allowed`: a valid id longer than 128 bits where only 128 fit."""


def decode_device_id(s: str, *, allow_extended: bool = False) -> bytes:
    """Return the 16 identity bytes of `s`, truncating extended ids when `allow_extended`."""
    if not _ALPHABET.fullmatch(s):
        raise InvalidDeviceId(f"{s!r} is not a valid device id: not unpadded URL-safe base64")
    if len(s) % 4 == 1:
        # No byte string encodes to this length, so some characters would be dropped.
        raise InvalidDeviceId(f"{s!r} is not a valid device id: impossible base64 length")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if len(raw) < DEVICE_ID_BYTES:
        raise InvalidDeviceId(f"{s!r} is not a valid device id: shorter than 128 bits")
    if len(raw) > DEVICE_ID_BYTES and not allow_extended:
        raise ExtendedIdNotAllowed(f"{s!r} is too long, device id must be 128 bits")
    return raw[:DEVICE_ID_BYTES]


def encode_device_id(raw: bytes) -> str:
    """Return the canonical 22-character id of exactly 16 raw bytes."""
    if len(raw) != DEVICE_ID_BYTES:
        raise ValueError(f"a device id is {DEVICE_ID_BYTES} bytes, got {len(raw)}")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def is_valid_device_id(s: str) -> bool:
    """Tell whether `s` is a valid 128-bit id (extended ids are not)."""
    try:
        decode_device_id(s)
    except InvalidDeviceId:
        return False
    return True


def canonical_device_id(s: str, *, allow_extended: bool = False) -> str:
    """Return the canonical spelling of `s`, the form Astarte stores and reports."""
    return encode_device_id(decode_device_id(s, allow_extended=allow_extended))


def random_device_id() -> str:
    """Return a fresh UUIDv4-shaped id, like the official SDKs' random ids."""
    return device_id_from_uuid(uuid.uuid4())


def namespaced_device_id(namespace: uuid.UUID, data: str) -> str:
    """Return the deterministic id of `data`, equal to the SDK's `generate_device_id`."""
    return device_id_from_uuid(uuid.uuid5(namespace, data))


def device_id_to_uuid(s: str) -> uuid.UUID:
    """Return the UUID under which Astarte stores the device (byte order preserved)."""
    return uuid.UUID(bytes=decode_device_id(s))


def device_id_from_uuid(u: uuid.UUID) -> str:
    """Return the device id whose storage UUID is `u`."""
    return encode_device_id(u.bytes)
