"""The column forms of the PostgreSQL tables, the same as the SQLite backend's (reasons in the
package docstring): instants as microseconds since the epoch, device ids as their 16 bytes,
values as BSON documents, documents as JSON text. Nothing here knows SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import bson
import orjson
from bson.codec_options import CodecOptions

from astraea.core.device_id import decode_device_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)  # built once: ingestion converts every sample's times
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // _MICROSECOND


def optional_micros(moment: datetime | None) -> int | None:
    return None if moment is None else micros(moment)


def moment(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def optional_moment(value: int | None) -> datetime | None:
    return None if value is None else moment(value)


@lru_cache(maxsize=16_384)
def raw_id(device_id: str) -> bytes:
    """The id's 16 bytes, remembered for the devices currently sending (every sample needs
    them and decoding costs more than the rest of the row)."""
    return decode_device_id(device_id)


def encode_value(value: object) -> bytes:
    """One value as stored: the BSON document {"v": value}, exact for every Astarte type."""
    return bson.encode({"v": value})


def encode_document(document: dict[str, object]) -> bytes:
    """An object aggregate as stored: its own BSON document."""
    return bson.encode(document)


def decode_document(blob: bytes) -> dict[str, Any]:
    return bson.decode(blob, _CODEC)


def decode_value(blob: bytes) -> object:
    return decode_document(blob)["v"]


def to_json(document: object) -> str:
    return orjson.dumps(document).decode()


def from_json(text: str) -> Any:
    return orjson.loads(text)
