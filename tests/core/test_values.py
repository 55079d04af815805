"""Value limits (validation.md §6) and JSON codecs (rest-api.md §1.3-§1.4)."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astraea.core.interface import Mapping, ValueType
from astraea.core.values import (
    InvalidValueError,
    MissingRequiredKeyError,
    UnexpectedObjectKeyError,
    ValueSizeError,
    ValueTypeError,
    datetime_from_millis,
    datetime_to_millis,
    format_datetime,
    object_value_from_json,
    parse_datetime,
    validate_object_value,
    validate_value,
    value_from_json,
    value_to_json,
)

T = ValueType
MOMENT = datetime(2017, 9, 28, 4, 5, tzinfo=UTC)
MOMENT_MS = 1_506_571_500_000


class Int64(int):
    """Stands for `bson.int64.Int64`, the int subclass the BSON decoder produces."""


def type_error(expected: ValueType | str) -> Any:
    name = expected if isinstance(expected, str) else expected.value
    return pytest.raises(ValueTypeError, match=f"type {name}$")


# --- device values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_type", "value", "canonical"),
    [
        (T.DOUBLE, 1.5, 1.5),
        (T.DOUBLE, 3, 3.0),
        (T.DOUBLE, -0.0, 0.0),
        (T.DOUBLE, 1e308, 1e308),
        (T.INTEGER, 0, 0),
        (T.INTEGER, 2**31 - 1, 2**31 - 1),
        (T.INTEGER, -(2**31 - 1), -(2**31 - 1)),
        (T.LONGINTEGER, 2**63 - 1, 2**63 - 1),
        (T.LONGINTEGER, -(2**63 - 1), -(2**63 - 1)),
        (T.LONGINTEGER, Int64(7), 7),
        (T.BOOLEAN, True, True),
        (T.BOOLEAN, False, False),
        (T.STRING, "", ""),
        (T.STRING, "é" * 32_768, "é" * 32_768),
        (T.STRING, "a" * 65_536, "a" * 65_536),
        (T.BINARYBLOB, b"", b""),
        (T.BINARYBLOB, bytearray(b"ab"), b"ab"),
        (T.BINARYBLOB, b"x" * 65_536, b"x" * 65_536),
        (T.DATETIME, MOMENT, MOMENT),
        (T.DATETIME, MOMENT.replace(tzinfo=None), MOMENT),
        (T.DATETIME, MOMENT.astimezone(timezone(timedelta(hours=2))), MOMENT),
        (T.DATETIME, MOMENT.replace(microsecond=123_999), MOMENT.replace(microsecond=123_000)),
        (T.INTEGERARRAY, [], []),
        (T.INTEGERARRAY, (1, 2), [1, 2]),
        (T.DOUBLEARRAY, [1, 2.5], [1.0, 2.5]),
        (T.BOOLEANARRAY, [True] * 1024, [True] * 1024),
        (T.BINARYBLOBARRAY, [b"a", bytearray(b"b")], [b"a", b"b"]),
        (T.DATETIMEARRAY, [MOMENT.replace(tzinfo=None)], [MOMENT]),
    ],
)
def test_valid_device_values(value_type: ValueType, value: object, canonical: object) -> None:
    result = validate_value(value_type, value)
    assert result == canonical
    assert type(result) is type(canonical)


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (T.DOUBLE, float("nan")),
        (T.DOUBLE, float("inf")),
        (T.DOUBLE, float("-inf")),
        (T.DOUBLE, 10**400),
        (T.DOUBLE, True),
        (T.DOUBLE, "1.0"),
        (T.DOUBLE, None),
        (T.INTEGER, 2**31),
        (T.INTEGER, -(2**31)),
        (T.INTEGER, 1.0),
        (T.INTEGER, True),
        (T.INTEGER, "1"),
        (T.LONGINTEGER, 2**63),
        (T.LONGINTEGER, -(2**63)),
        (T.LONGINTEGER, "5"),
        (T.BOOLEAN, 1),
        (T.BOOLEAN, "true"),
        (T.STRING, b"bytes"),
        (T.STRING, "\ud800"),
        (T.BINARYBLOB, "text"),
        (T.BINARYBLOB, [1, 2]),
        (T.DATETIME, MOMENT_MS),
        (T.DATETIME, "2017-09-28T04:05:00Z"),
        (T.DATETIME, datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))),
        (T.INTEGERARRAY, 1),
        (T.INTEGERARRAY, [1, "2"]),
        (T.INTEGERARRAY, {"a": 1}),
        (T.STRINGARRAY, "abc"),
        (T.DOUBLEARRAY, [1.0, float("nan")]),
    ],
)
def test_device_values_of_the_wrong_type(value_type: ValueType, value: object) -> None:
    with type_error(value_type):
        validate_value(value_type, value)


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (T.STRING, "a" * 65_537),
        (T.STRING, "é" * 32_769),
        (T.BINARYBLOB, b"x" * 65_537),
        (T.INTEGERARRAY, [1] * 1025),
        (T.STRINGARRAY, ["ok", "a" * 65_537]),
        (T.BINARYBLOBARRAY, [b"x" * 65_537]),
    ],
)
def test_device_values_too_large(value_type: ValueType, value: object) -> None:
    with pytest.raises(ValueSizeError):
        validate_value(value_type, value)


# --- JSON input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_type", "value", "canonical"),
    [
        (T.DOUBLE, 1, 1.0),
        (T.DOUBLE, 2.5, 2.5),
        (T.INTEGER, -5, -5),
        (T.LONGINTEGER, 5, 5),
        (T.LONGINTEGER, "5", 5),
        (T.LONGINTEGER, "+7", 7),
        (T.LONGINTEGER, "-9223372036854775807", -(2**63 - 1)),
        (T.LONGINTEGER, "0009", 9),
        (T.BOOLEAN, False, False),
        (T.STRING, "text", "text"),
        (T.BINARYBLOB, "aGVsbG8=", b"hello"),
        (T.BINARYBLOB, "", b""),
        (T.BINARYBLOB, base64.b64encode(b"\xff" * 65_536).decode(), b"\xff" * 65_536),
        (T.DATETIME, "2017-09-28T04:05:00.000Z", MOMENT),
        (T.DATETIME, "2017-09-28T04:05:00Z", MOMENT),
        (T.DATETIME, "2017-09-28T04:05Z", MOMENT),
        (T.DATETIME, "2017-09-28 04:05:00Z", MOMENT),
        (T.DATETIME, "2017-09-28T06:05:00+02:00", MOMENT),
        (T.DATETIME, "2017-09-28T00:05:00-0400", MOMENT),
        (T.DATETIME, "2017-09-28T04:05:00.123456789Z", MOMENT.replace(microsecond=123_000)),
        (T.DATETIME, "2017-09-28T04:05:00,5Z", MOMENT.replace(microsecond=500_000)),
        (T.DATETIME, MOMENT_MS, MOMENT),
        (T.DATETIME, -1, datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
        (T.LONGINTEGERARRAY, [1, "2"], [1, 2]),
        (T.BINARYBLOBARRAY, ["YQ==", "Yg=="], [b"a", b"b"]),
        (T.DATETIMEARRAY, [MOMENT_MS, "2017-09-28T04:05:00Z"], [MOMENT, MOMENT]),
        (T.STRINGARRAY, [], []),
    ],
)
def test_valid_json_values(value_type: ValueType, value: object, canonical: object) -> None:
    result = value_from_json(value_type, value)
    assert result == canonical
    assert type(result) is type(canonical)


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (T.DOUBLE, True),
        (T.DOUBLE, "1.5"),
        (T.DOUBLE, None),
        (T.DOUBLE, 10**400),
        (T.INTEGER, 2.0),
        (T.INTEGER, 2**31),
        (T.INTEGER, "3"),
        (T.LONGINTEGER, "9223372036854775808"),
        (T.LONGINTEGER, "1" * 30),
        (T.LONGINTEGER, "1.0"),
        (T.LONGINTEGER, "1e3"),
        (T.LONGINTEGER, " 5"),
        (T.LONGINTEGER, "5\n"),
        (T.LONGINTEGER, "1_000"),
        (T.LONGINTEGER, "٣"),
        (T.LONGINTEGER, ""),
        (T.LONGINTEGER, 1.0),
        (T.LONGINTEGER, True),
        (T.BOOLEAN, "false"),
        (T.STRING, 1),
        (T.BINARYBLOB, "aGVsbG8"),
        (T.BINARYBLOB, "!!!!"),
        (T.BINARYBLOB, "aGVs\nbG8="),
        (T.BINARYBLOB, "aGVsbG8=é"),
        (T.BINARYBLOB, [104, 105]),
        (T.DATETIME, "2017-09-28T04:05:00"),
        (T.DATETIME, "2017-09-28"),
        (T.DATETIME, "yesterday"),
        (T.DATETIME, "2017-13-28T04:05:00Z"),
        (T.DATETIME, "2017-09-28T24:05:00Z"),
        (T.DATETIME, "0001-01-01T00:00:00+01:00"),
        (T.DATETIME, "２０17-09-28T04:05:00Z"),
        (T.DATETIME, 10**20),
        (T.DATETIME, 1.5),
        (T.DATETIME, True),
        (T.DATETIME, MOMENT),
        (T.LONGINTEGERARRAY, ["1", "x"]),
        (T.DATETIMEARRAY, "2017-09-28T04:05:00Z"),
    ],
)
def test_json_values_of_the_wrong_type(value_type: ValueType, value: object) -> None:
    with type_error(value_type):
        value_from_json(value_type, value)


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (T.BINARYBLOB, base64.b64encode(b"x" * 65_537).decode()),
        (T.STRING, "a" * 65_537),
        (T.DOUBLEARRAY, [1.0] * 1025),
    ],
)
def test_json_values_too_large(value_type: ValueType, value: object) -> None:
    with pytest.raises(ValueSizeError):
        value_from_json(value_type, value)


# --- JSON output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_type", "value", "options", "rendered"),
    [
        (T.DOUBLE, 1.5, {}, 1.5),
        (T.INTEGER, 7, {}, 7),
        (T.BOOLEAN, True, {}, True),
        (T.STRING, "s", {}, "s"),
        (T.LONGINTEGER, 2**60, {}, 2**60),
        (T.LONGINTEGER, 2**60, {"longinteger_as_string": True}, str(2**60)),
        (T.LONGINTEGER, 2**52 - 1, {"safe_longintegers": True}, 2**52 - 1),
        (T.LONGINTEGER, -(2**52 - 1), {"safe_longintegers": True}, -(2**52 - 1)),
        (T.LONGINTEGER, 2**52, {"safe_longintegers": True}, str(2**52)),
        (T.LONGINTEGER, -(2**52), {"safe_longintegers": True}, str(-(2**52))),
        (T.BINARYBLOB, b"hello", {}, "aGVsbG8="),
        (T.DATETIME, MOMENT, {}, "2017-09-28T04:05:00.000Z"),
        (T.DATETIME, MOMENT.replace(microsecond=7_900), {}, "2017-09-28T04:05:00.007Z"),
        (T.DATETIME, MOMENT, {"keep_milliseconds": True}, MOMENT_MS),
        (T.LONGINTEGERARRAY, [1, 2], {"longinteger_as_string": True}, ["1", "2"]),
        (T.BINARYBLOBARRAY, [b"a", b""], {}, ["YQ==", ""]),
        (T.DATETIMEARRAY, [MOMENT], {}, ["2017-09-28T04:05:00.000Z"]),
        (T.DATETIMEARRAY, [MOMENT], {"keep_milliseconds": True}, [MOMENT_MS]),
        (T.INTEGERARRAY, [], {}, []),
    ],
)
def test_value_to_json(
    value_type: ValueType, value: object, options: dict[str, bool], rendered: object
) -> None:
    options = {"longinteger_as_string": False, **options}
    assert value_to_json(value_type, value, **options) == rendered


@pytest.mark.parametrize(
    ("value_type", "value"),
    [(T.BINARYBLOB, "aGVsbG8="), (T.DATETIME, "2017"), (T.INTEGERARRAY, 5), (T.LONGINTEGER, "5")],
)
def test_value_to_json_refuses_values_of_another_type(value_type: ValueType, value: object) -> None:
    with type_error(value_type):
        value_to_json(value_type, value, longinteger_as_string=True)


def test_datetime_helpers() -> None:
    assert format_datetime(datetime(999, 1, 2, 3, 4, 5, 6_000)) == "0999-01-02T03:04:05.006Z"
    assert datetime_to_millis(MOMENT) == MOMENT_MS
    assert datetime_from_millis(MOMENT_MS) == MOMENT
    assert parse_datetime("2017-09-28T04:05:00.000Z") == MOMENT
    with pytest.raises(ValueError):
        parse_datetime("2017-09-28T04:05:00")
    with pytest.raises(OverflowError):
        datetime_from_millis(10**20)


# --- object aggregates ---------------------------------------------------------------------

OBJECT = {
    "temp": Mapping(endpoint="/%{id}/temp", type=T.DOUBLE, required=True),
    "label": Mapping(endpoint="/%{id}/label", type=T.STRING),
    "seen": Mapping(endpoint="/%{id}/seen", type=T.DATETIME),
}


def test_object_values() -> None:
    assert validate_object_value(OBJECT, {"temp": 3, "seen": MOMENT}) == {
        "temp": 3.0,
        "seen": MOMENT,
    }
    assert object_value_from_json(OBJECT, {"temp": 1.5, "seen": MOMENT_MS, "label": "x"}) == {
        "temp": 1.5,
        "seen": MOMENT,
        "label": "x",
    }


@pytest.mark.parametrize("convert", [validate_object_value, object_value_from_json])
def test_object_value_errors(convert: Any) -> None:
    with pytest.raises(UnexpectedObjectKeyError) as unexpected:
        convert(OBJECT, {"temp": 1.0, "humidity": 3.0})
    assert unexpected.value.key == "humidity"
    with pytest.raises(MissingRequiredKeyError) as missing:
        convert(OBJECT, {"label": "x"})
    assert missing.value.key == "temp"
    with type_error("object"):
        convert(OBJECT, [1.0])
    with type_error(T.STRING):
        convert(OBJECT, {"temp": 1.0, "label": 5})


# --- properties ----------------------------------------------------------------------------

CANONICAL_SCALARS: dict[ValueType, st.SearchStrategy[Any]] = {
    T.DOUBLE: st.floats(allow_nan=False, allow_infinity=False),
    T.INTEGER: st.integers(-(2**31 - 1), 2**31 - 1),
    T.LONGINTEGER: st.integers(-(2**63 - 1), 2**63 - 1),
    T.BOOLEAN: st.booleans(),
    T.STRING: st.text(st.characters(codec="utf-8"), max_size=30),
    T.BINARYBLOB: st.binary(max_size=30),
    T.DATETIME: st.datetimes(timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
}


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[ValueType, object]:
    value_type = draw(st.sampled_from(list(ValueType)))
    scalar = CANONICAL_SCALARS[value_type.scalar]
    value = draw(st.lists(scalar, max_size=4) if value_type.is_array else scalar)
    return value_type, value


@given(typed_values(), st.booleans(), st.booleans(), st.booleans())
def test_json_round_trip(
    typed: tuple[ValueType, object], as_string: bool, keep_ms: bool, safe: bool
) -> None:
    value_type, value = typed
    assert validate_value(value_type, value) == value
    rendered = value_to_json(
        value_type,
        value,
        longinteger_as_string=as_string,
        keep_milliseconds=keep_ms,
        safe_longintegers=safe,
    )
    assert value_from_json(value_type, json.loads(json.dumps(rendered))) == value


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["2017-09-28T04:05:00Z", "aGVsbG8=", "12", "-0"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=10,
)
PYTHON = JSON | st.binary() | st.datetimes() | st.datetimes(timezones=st.timezones())


@given(st.sampled_from(list(ValueType)), JSON)
def test_arbitrary_json_only_raises_invalid_value(value_type: ValueType, value: object) -> None:
    with contextlib.suppress(InvalidValueError):
        value_from_json(value_type, value)


@given(st.sampled_from(list(ValueType)), PYTHON | st.lists(PYTHON, max_size=3))
def test_arbitrary_device_values_only_raise_invalid_value(
    value_type: ValueType, value: object
) -> None:
    try:
        canonical = validate_value(value_type, value)
    except InvalidValueError:
        return
    assert validate_value(value_type, canonical) == canonical
    value_to_json(value_type, canonical, longinteger_as_string=False)
