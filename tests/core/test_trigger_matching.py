"""Trigger evaluation: every value operator on every mapping type, and event routing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from astraea.core.interface import ValueType
from astraea.core.trigger_matching import (
    DataEvent,
    DeviceEvent,
    TriggerIndex,
    ValueCondition,
    compare_terms,
)
from astraea.core.triggers import (
    DataTriggerEvent,
    DeviceTriggerEvent,
    InstalledTrigger,
    ValueOperator,
    parse_trigger,
)

EQ, NE = ValueOperator.EQUAL_TO, ValueOperator.NOT_EQUAL_TO
GT, GE = ValueOperator.GREATER_THAN, ValueOperator.GREATER_OR_EQUAL_TO
LT, LE = ValueOperator.LESS_THAN, ValueOperator.LESS_OR_EQUAL_TO
CONTAINS, NOT_CONTAINS = ValueOperator.CONTAINS, ValueOperator.NOT_CONTAINS
NOON = datetime(2024, 1, 1, 12, tzinfo=UTC)
NOON_MS = 1_704_110_400_000
DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
OTHER_DEVICE = "hjnD0GrEP3o9ED1SUuL4QQ"
IFACE = "org.example.Values"


def _matches(operator: ValueOperator, known: object, value: object) -> bool:
    return ValueCondition(operator, known)(value)


# (mapping type, incoming canonical value, operator, known JSON value, expected)
OPERATOR_CASES: list[tuple[str, object, ValueOperator, object, bool]] = [
    # integer and longinteger
    ("integer", 5, EQ, 5, True),
    ("integer", 5, EQ, 5.0, True),
    ("integer", 5, EQ, 6, False),
    ("integer", 5, NE, 6, True),
    ("integer", 5, NE, 5, False),
    ("integer", 5, GT, 4, True),
    ("integer", 5, GT, 5, False),
    ("integer", 5, GE, 5, True),
    ("integer", 5, GE, 6, False),
    ("integer", 5, LT, 6, True),
    ("integer", 5, LT, 5, False),
    ("integer", 5, LE, 5, True),
    ("integer", 5, LE, 4.5, False),
    ("integer", 5, EQ, "5", False),
    ("integer", 5, CONTAINS, 5, False),
    ("integer", 5, NOT_CONTAINS, 5, False),
    ("longinteger", 2**40, EQ, 2**40, True),
    ("longinteger", 2**40, GT, 2**40 - 1, True),
    ("longinteger", -(2**62), LT, -(2**62) + 1, True),
    # double
    ("double", 0.5, GT, 0.4, True),
    ("double", 0.5, LE, 0.4, False),
    ("double", 1.0, EQ, 1, True),
    ("double", 1.5, LT, 2, True),
    ("double", 1.5, NE, 1.5, False),
    ("double", 1.5, CONTAINS, 1.5, False),
    # boolean: an atom, after every number
    ("boolean", True, EQ, True, True),
    ("boolean", True, NE, False, True),
    ("boolean", True, GT, False, True),
    ("boolean", False, LT, True, True),
    ("boolean", True, EQ, 1, False),
    ("boolean", False, GT, 10**9, True),
    ("boolean", True, CONTAINS, True, False),
    ("boolean", True, NOT_CONTAINS, False, False),
    # string: byte order, substrings
    ("string", "abc", EQ, "abc", True),
    ("string", "abc", NE, "abd", True),
    ("string", "abd", GT, "abc", True),
    ("string", "ab", LT, "abc", True),
    ("string", "b", GE, "abc", True),
    ("string", "é", GT, "z", True),
    ("string", "abc", LE, "abc", True),
    ("string", "abc", CONTAINS, "b", True),
    ("string", "abc", CONTAINS, "", True),
    ("string", "abc", CONTAINS, "x", False),
    ("string", "abc", NOT_CONTAINS, "x", True),
    ("string", "abc", NOT_CONTAINS, "bc", False),
    ("string", "1", CONTAINS, 1, False),
    ("string", "1", NOT_CONTAINS, 1, False),
    ("string", "a", GT, 5, True),
    ("string", "a", GT, [1], True),
    # binaryblob: known values in base64, byte substrings
    ("binaryblob", b"\x01\x02\x03", EQ, "AQID", True),
    ("binaryblob", b"\x01\x02\x03", NE, "AQIE", True),
    ("binaryblob", b"\x01\x02\x03", GT, "AQIC", True),
    ("binaryblob", b"\x01\x02", LT, "AQID", True),
    ("binaryblob", b"\x01\x02\x03", CONTAINS, "Ag==", True),
    ("binaryblob", b"\x01\x02\x03", CONTAINS, "BA==", False),
    ("binaryblob", b"\x01\x02\x03", NOT_CONTAINS, "BA==", True),
    ("binaryblob", b"\x01\x02\x03", NOT_CONTAINS, "AQ==", False),
    ("binaryblob", b"abc", EQ, "abc?", False),
    ("binaryblob", b"abc", CONTAINS, 1, False),
    ("binaryblob", b"abc", NOT_CONTAINS, 1, False),
    # datetime: known values as ISO 8601 or milliseconds
    ("datetime", NOON, EQ, "2024-01-01T12:00:00Z", True),
    ("datetime", NOON, EQ, "2024-01-01T13:00:00.000+01:00", True),
    ("datetime", NOON, EQ, NOON_MS, True),
    ("datetime", NOON, NE, "2024-01-01T12:00:00.001Z", True),
    ("datetime", NOON, GT, "2024-01-01T11:59:59Z", True),
    ("datetime", NOON, GE, NOON_MS, True),
    ("datetime", NOON, LT, "2025-01-01T00:00:00Z", True),
    ("datetime", NOON, LE, "2023-12-31T00:00:00Z", False),
    ("datetime", NOON, GT, True, True),
    ("datetime", NOON, LT, "not a date", True),
    ("datetime", NOON, CONTAINS, "2024", False),
    ("datetime", NOON, NOT_CONTAINS, "2024", False),
    # arrays: membership, element-wise order
    ("integerarray", [1, 2, 3], CONTAINS, 2, True),
    ("integerarray", [1, 2, 3], CONTAINS, 4, False),
    ("integerarray", [1, 2, 3], NOT_CONTAINS, 4, True),
    ("integerarray", [1, 2, 3], NOT_CONTAINS, 3, False),
    ("integerarray", [1, 2, 3], EQ, [1, 2, 3], True),
    ("integerarray", [1, 2, 3], EQ, [1.0, 2, 3], True),
    ("integerarray", [1, 2, 3], NE, [1, 2], True),
    ("integerarray", [1, 2, 3], GT, [1, 2], True),
    ("integerarray", [1, 2, 3], LT, [1, 3], True),
    ("integerarray", [], LT, [0], True),
    ("integerarray", [], CONTAINS, 0, False),
    ("integerarray", [], NOT_CONTAINS, 0, True),
    ("longintegerarray", [2**40], CONTAINS, 2**40, True),
    ("doublearray", [1.0, 2.5], CONTAINS, 1, True),
    ("doublearray", [1.0, 2.5], GE, [1.0, 2.5], True),
    ("booleanarray", [True, False], CONTAINS, False, True),
    ("booleanarray", [True], NOT_CONTAINS, True, False),
    ("stringarray", ["a", "b"], CONTAINS, "b", True),
    ("stringarray", ["a", "b"], CONTAINS, "ab", False),
    ("stringarray", ["a", "b"], LE, ["a", "c"], True),
    ("binaryblobarray", [b"\x01", b"\x02"], CONTAINS, "Ag==", True),
    ("binaryblobarray", [b"\x01", b"\x02"], NOT_CONTAINS, "Aw==", True),
    ("binaryblobarray", [b"\x01", b"\x02"], EQ, ["AQ==", "Ag=="], True),
    ("datetimearray", [NOON], CONTAINS, "2024-01-01T12:00:00Z", True),
    ("datetimearray", [NOON], EQ, [NOON_MS], True),
    ("datetimearray", [NOON], NOT_CONTAINS, "2024-01-01T12:00:01Z", True),
    ("integerarray", [1], GT, 1000, True),
    ("integerarray", [1], LT, "a", True),
    ("integerarray", [1, 2], GE, [1, 2], True),
    ("integerarray", [1, 2], LE, [1, 1], False),
    # the remaining operators of each type
    ("longinteger", 2**40, NE, 2**41, True),
    ("longinteger", 2**40, GE, 2**41, False),
    ("longinteger", 2**40, LE, 2**40, True),
    ("longinteger", 2**40, CONTAINS, 2**40, False),
    ("longinteger", 2**40, NOT_CONTAINS, 1, False),
    ("double", 2.5, GE, 2.5, True),
    ("double", 2.5, NOT_CONTAINS, 3.0, False),
    ("boolean", False, GE, False, True),
    ("boolean", True, LE, False, False),
    ("binaryblob", b"\x01\x02", GE, "AQI=", True),
    ("binaryblob", b"\x01\x02", LE, "AQE=", False),
    ("longintegerarray", [2**40, 1], EQ, [2**40, 1], True),
    ("longintegerarray", [2**40, 1], NE, [2**40, 1], False),
    ("longintegerarray", [2**40, 1], GT, [2**40], True),
    ("longintegerarray", [2**40, 1], GE, [2**40, 2], False),
    ("longintegerarray", [2**40, 1], LT, [2**41], True),
    ("longintegerarray", [2**40, 1], LE, [2**40, 1], True),
    ("longintegerarray", [2**40, 1], NOT_CONTAINS, 2**40, False),
    ("doublearray", [1.0, 2.5], EQ, [1, 2.5], True),
    ("doublearray", [1.0, 2.5], NE, [1.0, 2.5], False),
    ("doublearray", [1.0, 2.5], GT, [1.0, 2.4], True),
    ("doublearray", [1.0, 2.5], LT, [1.0], False),
    ("doublearray", [1.0, 2.5], LE, [1.0, 2.5, 0.0], True),
    ("doublearray", [1.0, 2.5], NOT_CONTAINS, 2.5, False),
    ("booleanarray", [True, False], EQ, [True, False], True),
    ("booleanarray", [True, False], NE, [True], True),
    ("booleanarray", [True, False], GT, [True], True),
    ("booleanarray", [True, False], GE, [True, True], False),
    ("booleanarray", [False], LT, [True], True),
    ("booleanarray", [False], LE, [False], True),
    ("stringarray", ["a", "b"], EQ, ["a", "b"], True),
    ("stringarray", ["a", "b"], NE, ["a", "b"], False),
    ("stringarray", ["a", "b"], GT, ["a"], True),
    ("stringarray", ["a", "b"], GE, ["b"], False),
    ("stringarray", ["a", "b"], LT, ["a", "b", ""], True),
    ("stringarray", ["a", "b"], NOT_CONTAINS, "c", True),
    ("binaryblobarray", [b"\x01"], NE, ["AQ=="], False),
    ("binaryblobarray", [b"\x01"], GT, ["AA=="], True),
    ("binaryblobarray", [b"\x01"], GE, ["AQ=="], True),
    ("binaryblobarray", [b"\x01"], LT, ["Ag=="], True),
    ("binaryblobarray", [b"\x01"], LE, ["AA=="], False),
    ("datetimearray", [NOON], NE, ["2024-01-01T12:00:00Z"], False),
    ("datetimearray", [NOON], GT, ["2024-01-01T11:00:00Z"], True),
    ("datetimearray", [NOON], GE, [NOON_MS + 1], False),
    ("datetimearray", [NOON], LT, [NOON_MS + 1], True),
    ("datetimearray", [NOON], LE, ["2024-01-01T12:00:00.000Z"], True),
]


@pytest.mark.parametrize(("mapping_type", "value", "operator", "known", "expected"), OPERATOR_CASES)
def test_value_operators_per_type(
    mapping_type: str, value: object, operator: ValueOperator, known: object, expected: bool
) -> None:
    assert _matches(operator, known, value) is expected


def test_every_operator_is_covered_for_every_type() -> None:
    operators = {op for op in ValueOperator if op is not ValueOperator.ANY}
    for value_type in ValueType:
        covered = {case[2] for case in OPERATOR_CASES if case[0] == value_type.value}
        assert covered == operators, value_type


@pytest.mark.parametrize("value", [None, 0, "", [], b"", NOON, {"a": 1}])
def test_any_matches_everything_even_unset(value: object) -> None:
    assert _matches(ValueOperator.ANY, None, value) is True


@pytest.mark.parametrize("operator", [op for op in ValueOperator if op is not ValueOperator.ANY])
def test_an_unset_value_matches_no_other_operator(operator: ValueOperator) -> None:
    assert _matches(operator, None, None) is False
    assert _matches(operator, 1, None) is False


@pytest.mark.parametrize(
    "ascending",
    [
        [-1, 0.5, 1, False, None, True, NOON, {"z": 9}, {"a": 1, "b": 0}, [], [0], [0, 0], "", "a"],
        [{"a": 1}, {"b": 0}, {"b": 1}],
        [b"a", "b", b"c"],
    ],
)
def test_term_order_between_and_within_types(ascending: list[Any]) -> None:
    for index, left in enumerate(ascending):
        for right in ascending[index + 1 :]:
            assert compare_terms(left, right) == -1, (left, right)
            assert compare_terms(right, left) == 1, (right, left)
        assert compare_terms(left, left) == 0


def test_objects_compare_by_size_then_keys_then_values() -> None:
    assert _matches(GT, {"z": 0}, {"a": 1, "b": 2}) is True
    assert _matches(EQ, {"b": 2, "a": 1.0}, {"a": 1, "b": 2}) is True
    assert _matches(LT, {"a": 1, "c": 0}, {"a": 9, "b": 9}) is True


def _installed(*simple: dict[str, Any], name: str = "t") -> InstalledTrigger:
    trigger = parse_trigger(
        {
            "name": name,
            "action": {"http_url": "https://example.com/hook", "http_method": "post"},
            "simple_triggers": list(simple),
        },
        realm="test",
    )
    ids = tuple(uuid.uuid4() for _ in simple)
    return InstalledTrigger(trigger, uuid.uuid4(), ids)


def _data_trigger(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "data_trigger",
        "on": "incoming_data",
        "interface_name": IFACE,
        "interface_major": 1,
        "match_path": "/*",
        "value_match_operator": "*",
    }
    return doc | changes


def _data_event(
    kind: DataTriggerEvent = DataTriggerEvent.INCOMING_DATA,
    *,
    device: str = DEVICE,
    interface: str = IFACE,
    major: int = 1,
    path: str = "/s1/value",
    value: object = 1.0,
) -> DataEvent:
    return DataEvent(kind, device, interface, major, path, value)


def _fires(installed: InstalledTrigger, event: DataEvent, groups: tuple[str, ...] = ()) -> bool:
    return bool(TriggerIndex([installed]).match_data(event, groups))


@pytest.mark.parametrize("kind", list(DataTriggerEvent))
def test_data_triggers_fire_only_on_their_event(kind: DataTriggerEvent) -> None:
    installed = _installed(_data_trigger(on=kind.value))
    for other in DataTriggerEvent:
        assert _fires(installed, _data_event(other)) is (other is kind)


def test_interface_name_and_major_must_match_unless_any() -> None:
    named = _installed(_data_trigger())
    assert _fires(named, _data_event()) is True
    assert _fires(named, _data_event(major=2)) is False
    assert _fires(named, _data_event(interface="org.example.Other")) is False

    any_interface = _installed(_data_trigger(interface_name="*"))
    assert _fires(any_interface, _data_event(interface="org.example.Other", major=7)) is True


@pytest.mark.parametrize(
    ("match_path", "path", "expected"),
    [
        ("/*", "/anything/at/all", True),
        ("/*", "/", True),
        ("/s1/value", "/s1/value", True),
        ("/s1/value", "/s2/value", False),
        ("/%{sensor}/value", "/s2/value", True),
        ("/%{sensor}/value", "/s2/name", False),
        ("/%{sensor}/value", "/s2/value/x", False),
        ("/%{sensor}/value", "/value", False),
        ("/%{a}/%{b}", "/x/y", True),
    ],
)
def test_match_path(match_path: str, path: str, expected: bool) -> None:
    operator = "*" if match_path == "/*" else "=="
    simple = _data_trigger(match_path=match_path, value_match_operator=operator)
    if operator != "*":
        simple["known_value"] = 1.0
    assert _fires(_installed(simple), _data_event(path=path)) is expected


def test_value_condition_applies_to_the_event_value() -> None:
    installed = _installed(
        _data_trigger(match_path="/%{s}/value", value_match_operator=">", known_value=0.4)
    )
    assert _fires(installed, _data_event(value=0.5)) is True
    assert _fires(installed, _data_event(value=0.3)) is False
    assert _fires(installed, _data_event(DataTriggerEvent.INCOMING_DATA, value=None)) is False


def test_path_removed_fires_on_any_operator_only() -> None:
    removed = DataTriggerEvent.PATH_REMOVED
    any_value = _installed(_data_trigger(on="path_removed"))
    with_value = _installed(
        _data_trigger(
            on="path_removed", match_path="/s1/value", value_match_operator="!=", known_value=0
        )
    )
    assert _fires(any_value, _data_event(removed, value=None)) is True
    assert _fires(with_value, _data_event(removed, value=None)) is False


def test_device_and_group_scoping() -> None:
    for_device = _installed(_data_trigger(device_id=DEVICE))
    assert _fires(for_device, _data_event()) is True
    assert _fires(for_device, _data_event(device=OTHER_DEVICE)) is False

    for_group = _installed(_data_trigger(interface_name="*", group_name="plant"))
    assert TriggerIndex([for_group]).uses_groups is True
    assert TriggerIndex([for_device]).uses_groups is False
    assert _fires(for_group, _data_event(), ("plant", "other")) is True
    assert _fires(for_group, _data_event(), ("other",)) is False
    assert _fires(for_group, _data_event()) is False


def test_matches_keep_trigger_order_across_named_and_any_interface() -> None:
    first = _installed(_data_trigger(interface_name="*"), _data_trigger(), name="a")
    second = _installed(_data_trigger(), _data_trigger(interface_name="*"), name="b")
    index = TriggerIndex([first, second])

    matches = index.match_data(_data_event())

    assert [(m.installed.trigger.name, m.position) for m in matches] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]
    assert matches[1].simple_trigger_id == first.simple_trigger_ids[1]
    assert matches[1].simple_trigger == first.trigger.simple_triggers[1]


def test_an_empty_index_matches_nothing() -> None:
    index = TriggerIndex([])
    assert index.match_data(_data_event()) == []
    assert index.match_device(DeviceEvent(DeviceTriggerEvent.DEVICE_CONNECTED, DEVICE)) == []


def _device_trigger(on: DeviceTriggerEvent, **changes: Any) -> dict[str, Any]:
    return {"type": "device_trigger", "on": on.value} | changes


def _device_fires(
    installed: InstalledTrigger, event: DeviceEvent, groups: tuple[str, ...] = ()
) -> bool:
    return bool(TriggerIndex([installed]).match_device(event, groups))


NON_INTERFACE_EVENTS = [
    kind for kind in DeviceTriggerEvent if not kind.value.startswith("interface_")
]


@pytest.mark.parametrize("kind", NON_INTERFACE_EVENTS)
def test_device_triggers_fire_only_on_their_event(kind: DeviceTriggerEvent) -> None:
    installed = _installed(_device_trigger(kind))
    for other in DeviceTriggerEvent:
        event = DeviceEvent(other, DEVICE, IFACE, 1)
        assert _device_fires(installed, event) is (other is kind)


@pytest.mark.parametrize("kind", NON_INTERFACE_EVENTS)
def test_device_trigger_scoping(kind: DeviceTriggerEvent) -> None:
    any_device = _installed(_device_trigger(kind, device_id="*"))
    one_device = _installed(_device_trigger(kind, device_id=DEVICE))
    group = _installed(_device_trigger(kind, group_name="g"))

    here, there = DeviceEvent(kind, DEVICE), DeviceEvent(kind, OTHER_DEVICE)
    assert _device_fires(any_device, there) is True
    assert _device_fires(one_device, here) is True
    assert _device_fires(one_device, there) is False
    assert _device_fires(group, here, ("g",)) is True
    assert _device_fires(group, here, ("h",)) is False


@pytest.mark.parametrize(
    "kind",
    [
        DeviceTriggerEvent.INTERFACE_ADDED,
        DeviceTriggerEvent.INTERFACE_REMOVED,
        DeviceTriggerEvent.INTERFACE_MINOR_UPDATED,
    ],
)
def test_interface_events_match_the_named_interface(kind: DeviceTriggerEvent) -> None:
    named = _installed(_device_trigger(kind, interface_name=IFACE, interface_major=1))
    assert _device_fires(named, DeviceEvent(kind, DEVICE, IFACE, 1)) is True
    assert _device_fires(named, DeviceEvent(kind, DEVICE, IFACE, 2)) is False
    assert _device_fires(named, DeviceEvent(kind, DEVICE, "org.example.Other", 1)) is False
    if kind is not DeviceTriggerEvent.INTERFACE_MINOR_UPDATED:
        any_interface = _installed(_device_trigger(kind, interface_name="*"))
        assert _device_fires(any_interface, DeviceEvent(kind, DEVICE, "org.example.B", 3)) is True


def test_wants_tells_which_events_have_listeners() -> None:
    named = TriggerIndex([_installed(_data_trigger(on="value_stored"))])
    assert named.wants(DataTriggerEvent.VALUE_STORED, IFACE, 1) is True
    assert named.wants(DataTriggerEvent.VALUE_STORED, IFACE, 2) is False
    assert named.wants(DataTriggerEvent.VALUE_STORED, "org.example.Other", 1) is False
    assert named.wants(DataTriggerEvent.INCOMING_DATA, IFACE, 1) is False
    assert named.wants(DeviceTriggerEvent.DEVICE_CONNECTED) is False
    any_interface = _data_trigger(interface_name="*")
    device = {"type": "device_trigger", "on": "device_connected"}
    index = TriggerIndex([_installed(any_interface), _installed(device, name="d")])
    assert index.wants(DataTriggerEvent.INCOMING_DATA, "org.example.Other", 3) is True
    assert index.wants(DataTriggerEvent.PATH_CREATED, "org.example.Other", 3) is False
    assert index.wants(DeviceTriggerEvent.DEVICE_CONNECTED) is True
    assert index.wants(DeviceTriggerEvent.DEVICE_DISCONNECTED) is False
