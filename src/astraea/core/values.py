"""Mapping values: Astarte's type limits, and conversion from and to JSON.

Values live in memory as canonical Python objects: `float` (double), `int` (integer and
longinteger), `bool`, `str`, `bytes` (binaryblob), timezone-aware UTC `datetime` truncated to
milliseconds (Astarte's datetime resolution) and `list` for arrays. Both entry points, device
values (`validate_value`) and REST JSON (`value_from_json`), produce that form.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from astraea.core.endpoints import object_key
from astraea.core.interface import Mapping, ValueType

INTEGER_MAX = 2**31 - 1
LONGINTEGER_MAX = 2**63 - 1
STRING_MAX_BYTES = 65_536
BLOB_MAX_BYTES = 65_536
ARRAY_MAX_ITEMS = 1024
# AppEngine's `allow_safe_bigintegers` bound, below JavaScript's 2^53 - 1.
SAFE_LONGINTEGER_MAX = 2**52 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DECIMAL = re.compile(r"[+-]?[0-9]{1,25}", re.ASCII)
_ISO_8601 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)",
    re.ASCII,
)


class InvalidValueError(ValueError):
    """A value that its mapping cannot hold."""


class ValueTypeError(InvalidValueError):
    """Wrong type or out of the type's range (Astarte `unexpected_value_type`)."""

    def __init__(self, expected_type: str) -> None:
        super().__init__(f"expected a value of type {expected_type}")
        self.expected_type = expected_type


class ValueSizeError(InvalidValueError):
    """String, blob or array too large (Astarte `value_size_exceeded`)."""


class UnexpectedObjectKeyError(InvalidValueError):
    """An object aggregate value has a key no mapping declares."""

    def __init__(self, key: str) -> None:
        super().__init__(f"unexpected object key {key!r}")
        self.key = key


class MissingRequiredKeyError(InvalidValueError):
    """An object aggregate value lacks the key of a `required` mapping."""

    def __init__(self, key: str) -> None:
        super().__init__(f"missing required object key {key!r}")
        self.key = key


class _Mismatch(Exception):
    """Raised by scalar checks; turned into a `ValueTypeError` naming the declared type."""


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date and time with a UTC offset (as Astarte requires), in UTC to the ms."""
    if not _ISO_8601.fullmatch(text):
        raise ValueError(f"not an ISO 8601 date and time with offset: {text!r}")
    try:
        return _utc_millis(datetime.fromisoformat(text))
    except OverflowError:
        raise ValueError(f"date and time out of range: {text!r}") from None


def format_datetime(moment: datetime) -> str:
    """Astarte's JSON rendering, e.g. `2017-09-28T04:05:00.000Z`."""
    moment = _utc_millis(moment)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}."
        f"{moment.microsecond // 1000:03d}Z"
    )


def datetime_to_millis(moment: datetime) -> int:
    return (_utc_millis(moment) - _EPOCH) // timedelta(milliseconds=1)


def datetime_from_millis(millis: int) -> datetime:
    """Raises OverflowError outside the years Python can represent (1 to 9999)."""
    return _EPOCH + timedelta(milliseconds=millis)


def _utc_millis(moment: datetime) -> datetime:
    """Naive datetimes are UTC already (the BSON decoder's default)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def validate_value(value_type: ValueType, value: object) -> object:
    """A BSON-decoded device value in canonical form, or `InvalidValueError`."""
    return _convert(value_type, value, _DEVICE_SCALARS)


def value_from_json(value_type: ValueType, value: object) -> object:
    """A value written through the REST API in canonical form, or `InvalidValueError`.

    Beyond the device forms, longintegers may be decimal strings, datetimes ISO 8601 strings
    or milliseconds since the epoch, and binary blobs must be standard base64.
    """
    return _convert(value_type, value, _JSON_SCALARS)


def value_to_json(
    value_type: ValueType,
    value: object,
    *,
    longinteger_as_string: bool,
    keep_milliseconds: bool = False,
    safe_longintegers: bool = False,
) -> object:
    """The JSON form of a canonical value: base64 blobs, ISO 8601 datetimes (or ms since
    the epoch with `keep_milliseconds`). Longintegers become strings when asked, or with
    `safe_longintegers` only beyond ±(2^52 - 1) (AppEngine's `allow_safe_bigintegers`)."""

    def render(scalar: ValueType, item: object) -> object:
        checked = _DEVICE_SCALARS[scalar](item)
        if isinstance(checked, bytes):
            return base64.b64encode(checked).decode("ascii")
        if isinstance(checked, datetime):
            return datetime_to_millis(checked) if keep_milliseconds else format_datetime(checked)
        if scalar is ValueType.LONGINTEGER and isinstance(checked, int):
            unsafe = safe_longintegers and abs(checked) > SAFE_LONGINTEGER_MAX
            return str(checked) if longinteger_as_string or unsafe else checked
        return checked

    try:
        if not value_type.is_array:
            return render(value_type, value)
        return [render(value_type.scalar, item) for item in _array(value)]
    except _Mismatch:
        raise ValueTypeError(value_type.value) from None


def validate_object_value(mappings: dict[str, Mapping], value: object) -> dict[str, object]:
    """A device's object aggregate value (`mappings` keyed by `object_key`), canonicalised."""
    return _convert_object(mappings, value, validate_value)


def object_value_from_json(mappings: dict[str, Mapping], value: object) -> dict[str, object]:
    """An object aggregate written through the REST API, canonicalised."""
    return _convert_object(mappings, value, value_from_json)


def _convert_object(
    mappings: dict[str, Mapping],
    value: object,
    convert: Callable[[ValueType, object], object],
) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueTypeError("object")
    for key in value:
        if key not in mappings:
            raise UnexpectedObjectKeyError(str(key))
    for mapping in mappings.values():
        if mapping.required and object_key(mapping) not in value:
            raise MissingRequiredKeyError(object_key(mapping))
    return {key: convert(mappings[key].type, item) for key, item in value.items()}


def _convert(
    value_type: ValueType, value: object, scalars: dict[ValueType, Callable[[object], object]]
) -> object:
    try:
        if not value_type.is_array:
            return scalars[value_type](value)
        check = scalars[value_type.scalar]
        return [check(item) for item in _array(value)]
    except _Mismatch:
        raise ValueTypeError(value_type.value) from None


def _array(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _Mismatch
    if len(value) > ARRAY_MAX_ITEMS:
        raise ValueSizeError(f"arrays hold at most {ARRAY_MAX_ITEMS} items")
    return list(value)


def _double(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Mismatch
    try:
        number = float(value)
    except OverflowError:
        raise _Mismatch from None
    if not math.isfinite(number):
        raise _Mismatch
    return number


def _bounded_integer(bound: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > bound:
            raise _Mismatch
        return int(value)

    return check


_integer = _bounded_integer(INTEGER_MAX)
_longinteger = _bounded_integer(LONGINTEGER_MAX)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Mismatch
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Mismatch from None
    if size > STRING_MAX_BYTES:
        raise ValueSizeError(f"strings hold at most {STRING_MAX_BYTES} bytes")
    return value


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise _Mismatch
    if len(value) > BLOB_MAX_BYTES:
        raise ValueSizeError(f"binary blobs hold at most {BLOB_MAX_BYTES} bytes")
    return bytes(value)


def _datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise _Mismatch
    try:
        return _utc_millis(value)
    except OverflowError:
        raise _Mismatch from None


def _json_longinteger(value: object) -> int:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise _Mismatch
        value = int(value)
    return _longinteger(value)


def _json_blob(value: object) -> bytes:
    if not isinstance(value, str):
        raise _Mismatch
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Mismatch from None
    return _blob(decoded)


def _json_datetime(value: object) -> datetime:
    try:
        if isinstance(value, str):
            return parse_datetime(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime_from_millis(value)
    except (ValueError, OverflowError):
        pass
    raise _Mismatch


_DEVICE_SCALARS: dict[ValueType, Callable[[object], object]] = {
    ValueType.DOUBLE: _double,
    ValueType.INTEGER: _integer,
    ValueType.LONGINTEGER: _longinteger,
    ValueType.BOOLEAN: _boolean,
    ValueType.STRING: _string,
    ValueType.BINARYBLOB: _blob,
    ValueType.DATETIME: _datetime,
}
_JSON_SCALARS: dict[ValueType, Callable[[object], object]] = {
    **_DEVICE_SCALARS,
    ValueType.LONGINTEGER: _json_longinteger,
    ValueType.BINARYBLOB: _json_blob,
    ValueType.DATETIME: _json_datetime,
}
