"""Trigger documents: every validation rule, valid and invalid, and the canonical rendering."""

from __future__ import annotations

from typing import Any

import pytest

from astraea.core.interface import (
    Aggregation,
    Interface,
    InterfaceType,
    Mapping,
    Ownership,
    ValueType,
)
from astraea.core.trigger_actions import AmqpAction, HttpAction
from astraea.core.triggers import (
    DataTrigger,
    DataTriggerEvent,
    DeviceTrigger,
    DeviceTriggerEvent,
    InvalidDatastreamTrigger,
    InvalidObjectAggregationTrigger,
    Trigger,
    TriggerInterfaceError,
    TriggerValidationError,
    UnsupportedTriggerType,
    ValueOperator,
    check_data_trigger_interface,
    is_valid_group_name,
    parse_trigger,
)

REALM = "test"
HTTP = {"http_url": "https://example.com/hook", "http_method": "post"}
DEVICE = "ydqBlFsGQ--xZ-_efQxuLw"
NOT_ALLOWED = (
    "is allowed only in if 'on' is one of interface_minor_updated, interface_removed, "
    "interface_added"
)


def _data(**changes: Any) -> dict[str, Any]:
    simple = {
        "type": "data_trigger",
        "on": "incoming_data",
        "interface_name": "org.example.Values",
        "interface_major": 0,
        "match_path": "/%{sensor}/value",
        "value_match_operator": ">",
        "known_value": 0.4,
    }
    return _apply(simple, changes)


def _device(**changes: Any) -> dict[str, Any]:
    return _apply({"type": "device_trigger", "on": "device_connected"}, changes)


def _apply(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` set keys; the value `...` removes one."""
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def _trigger(*simple: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return _apply({"name": "t", "action": dict(HTTP), "simple_triggers": list(simple)}, changes)


def _errors(doc: object) -> dict[str, Any]:
    with pytest.raises(TriggerValidationError) as caught:
        parse_trigger(doc, realm=REALM)
    return caught.value.errors


def _simple_errors(simple: dict[str, Any]) -> dict[str, Any]:
    errors = _errors(_trigger(simple))
    assert set(errors) == {"simple_triggers"}
    [item] = errors["simple_triggers"]
    return dict(item)


def test_documented_example_parses_and_renders() -> None:
    trigger = parse_trigger(_trigger(_data()), realm=REALM)

    assert trigger == Trigger(
        name="t",
        action=HttpAction(url="https://example.com/hook", method="post"),
        simple_triggers=(
            DataTrigger(
                on=DataTriggerEvent.INCOMING_DATA,
                interface_name="org.example.Values",
                interface_major=0,
                match_path="/%{sensor}/value",
                value_match_operator=ValueOperator.GREATER_THAN,
                known_value=0.4,
            ),
        ),
    )
    assert trigger.to_json() == {
        "name": "t",
        "action": {
            "http_url": "https://example.com/hook",
            "http_method": "post",
            "ignore_ssl_errors": False,
        },
        "simple_triggers": [
            {
                "type": "data_trigger",
                "on": "incoming_data",
                "interface_name": "org.example.Values",
                "interface_major": 0,
                "match_path": "/%{sensor}/value",
                "value_match_operator": ">",
                "known_value": 0.4,
            }
        ],
    }


@pytest.mark.parametrize(
    "simple",
    [
        _data(),
        _data(interface_name="*", interface_major=..., match_path="/*", value_match_operator="*"),
        _data(device_id=DEVICE, group_name=...),
        _data(group_name="plant-1", known_value=[1, "a", {"k": None}]),
        _data(value_match_operator="contains", known_value="x"),
        _device(),
        _device(on="interface_added", interface_name="*"),
        _device(on="interface_removed", interface_name="org.example.Values", interface_major=2),
        _device(
            on="interface_minor_updated", interface_name="org.example.Values", interface_major=0
        ),
        _device(on="device_error", group_name="g"),
    ],
)
def test_rendered_triggers_parse_back_equal(simple: dict[str, Any]) -> None:
    trigger = parse_trigger(_trigger(simple, policy="retry"), realm=REALM)

    assert parse_trigger(trigger.to_json(), realm=REALM) == trigger


def test_rendering_drops_what_the_operator_or_interface_makes_moot() -> None:
    any_value = _data(value_match_operator="*", match_path="/a", known_value=5)
    any_interface = _data(
        interface_name="*", interface_major=3, match_path="/*", value_match_operator="*"
    )
    trigger = parse_trigger(_trigger(any_value, any_interface), realm=REALM)

    rendered = trigger.to_json()["simple_triggers"]
    assert "known_value" not in rendered[0]
    assert "interface_major" not in rendered[1] and "known_value" not in rendered[1]
    assert trigger.simple_triggers[1] == DataTrigger(
        on=DataTriggerEvent.INCOMING_DATA,
        interface_name="*",
        interface_major=None,
        match_path="/*",
        value_match_operator=ValueOperator.ANY,
    )


def test_device_id_star_means_any_device_and_ids_render_canonically() -> None:
    # The last character carries 2 bits of the id and 4 padding bits, ignored when decoding.
    sloppy = DEVICE[:-1] + "x"
    trigger = parse_trigger(
        _trigger(_device(device_id="*"), _data(device_id="*"), _device(device_id=sloppy)),
        realm=REALM,
    )

    rendered = trigger.to_json()["simple_triggers"]
    assert rendered[0] == {"type": "device_trigger", "on": "device_connected"}
    assert "device_id" not in rendered[1]
    assert rendered[2]["device_id"] == DEVICE


def test_policy_is_rendered_only_when_set() -> None:
    assert "policy" not in parse_trigger(_trigger(_device()), realm=REALM).to_json()
    assert "policy" not in parse_trigger(_trigger(_device(), policy=""), realm=REALM).to_json()
    with_policy = parse_trigger(_trigger(_device(), policy="p"), realm=REALM)
    assert with_policy.policy == "p" and with_policy.to_json()["policy"] == "p"


def test_amqp_actions_are_checked_against_the_realm() -> None:
    action = {
        "amqp_exchange": "astarte_events_test_out",
        "amqp_routing_key": "rk",
        "amqp_message_expiration_ms": 1000,
        "amqp_message_persistent": True,
    }
    trigger = parse_trigger(_trigger(_device(), action=action), realm=REALM)
    assert isinstance(trigger.action, AmqpAction)
    assert trigger.to_json()["action"] == action

    with pytest.raises(TriggerValidationError) as caught:
        parse_trigger(_trigger(_device(), action=action), realm="other")
    assert caught.value.errors == {"action": {"amqp_exchange": ["has invalid format"]}}


def test_a_document_that_is_not_an_object() -> None:
    assert _errors([1]) == {"data": ["is invalid"]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": ...}, {"name": ["can't be blank"]}),
        ({"name": " "}, {"name": ["can't be blank"]}),
        ({"name": 5}, {"name": ["is invalid"]}),
        ({"policy": 5}, {"policy": ["is invalid"]}),
        ({"policy": "@default"}, {"policy": ["has invalid format"]}),
        ({"policy": "a\nb"}, {"policy": ["has invalid format"]}),
        ({"policy": "p" * 129}, {"policy": ["should be at most 128 character(s)"]}),
        ({"action": ...}, {"action": ["is invalid"]}),
        ({"action": {"kind": "http"}}, {"action": ["is invalid"]}),
        (
            {"action": {"http_url": "ftp://example.com/x"}},
            {
                "action": {
                    "http_url": ["must be a valid http(s) URL"],
                    "http_method": ["can't be blank"],
                }
            },
        ),
        ({"simple_triggers": ...}, {"simple_triggers": ["can't be blank"]}),
        ({"simple_triggers": []}, {"simple_triggers": ["can't be blank"]}),
        ({"simple_triggers": {"type": "device_trigger"}}, {"simple_triggers": ["is invalid"]}),
        ({"simple_triggers": [_device(), "device_trigger"]}, {"simple_triggers": ["is invalid"]}),
    ],
)
def test_trigger_fields(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _errors(_trigger(_device(), **changes)) == expected


def test_policy_of_the_maximum_length_is_valid() -> None:
    assert parse_trigger(_trigger(_device(), policy="p" * 128), realm=REALM).policy == "p" * 128


def test_errors_of_several_simple_triggers_are_listed_by_position() -> None:
    errors = _errors(_trigger(_device(), _device(on="nope"), _data(on=...)))

    assert errors == {"simple_triggers": [{}, {"on": ["is invalid"]}, {"on": ["can't be blank"]}]}


@pytest.mark.parametrize(
    ("simple", "expected"),
    [
        ({"on": "device_connected"}, {"type": ["can't be blank"]}),
        ({"type": ""}, {"type": ["can't be blank"]}),
        ({"type": "introspection_trigger"}, {"type": ["is invalid"]}),
        ({"type": 1}, {"type": ["is invalid"]}),
    ],
)
def test_simple_trigger_type(simple: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _simple_errors(simple) == expected


@pytest.mark.parametrize("event", list(DataTriggerEvent))
def test_every_data_event_is_accepted(event: DataTriggerEvent) -> None:
    trigger = parse_trigger(_trigger(_data(on=event.value)), realm=REALM)
    assert trigger.simple_triggers[0].on is event


@pytest.mark.parametrize("operator", [op for op in ValueOperator if op is not ValueOperator.ANY])
def test_every_value_operator_is_accepted(operator: ValueOperator) -> None:
    simple = parse_trigger(
        _trigger(_data(value_match_operator=operator.value)), realm=REALM
    ).simple_triggers[0]
    assert isinstance(simple, DataTrigger)
    assert simple.value_match_operator is operator and simple.known_value == 0.4


@pytest.mark.parametrize("known", [0, -3, 2.5, True, False, "text", [1, 2], {"a": 1}, "0"])
def test_known_value_may_be_any_json_value(known: object) -> None:
    simple = parse_trigger(_trigger(_data(known_value=known)), realm=REALM).simple_triggers[0]
    assert isinstance(simple, DataTrigger) and simple.known_value == known


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"on": ...}, {"on": ["can't be blank"]}),
        ({"on": "device_connected"}, {"on": ["is invalid"]}),
        ({"on": 3}, {"on": ["is invalid"]}),
        ({"interface_name": ...}, {"interface_name": ["can't be blank"]}),
        ({"interface_name": "Values"}, {"interface_name": ["has invalid format"]}),
        ({"interface_name": "org.example.Values-"}, {"interface_name": ["has invalid format"]}),
        ({"interface_name": ["org.example.Values"]}, {"interface_name": ["is invalid"]}),
        ({"interface_major": ...}, {"interface_major": ["can't be blank"]}),
        ({"interface_major": "0"}, {"interface_major": ["is invalid"]}),
        ({"interface_major": True}, {"interface_major": ["is invalid"]}),
        ({"match_path": ...}, {"match_path": ["can't be blank"]}),
        ({"match_path": "value"}, {"match_path": ["has invalid format"]}),
        ({"match_path": "/a/"}, {"match_path": ["has invalid format"]}),
        ({"match_path": "/a/%{}"}, {"match_path": ["has invalid format"]}),
        (
            {"match_path": "/*", "value_match_operator": "=="},
            {"value_match_operator": ["must be * when match_path is /*"]},
        ),
        (
            {"match_path": "/*", "value_match_operator": ...},
            {"value_match_operator": ["can't be blank", "must be * when match_path is /*"]},
        ),
        (
            {"value_match_operator": ..., "known_value": ...},
            {"value_match_operator": ["can't be blank"], "known_value": ["can't be blank"]},
        ),
        ({"value_match_operator": "=~"}, {"value_match_operator": ["is invalid"]}),
        ({"value_match_operator": "CONTAINS"}, {"value_match_operator": ["is invalid"]}),
        ({"known_value": ...}, {"known_value": ["can't be blank"]}),
        ({"known_value": None}, {"known_value": ["can't be blank"]}),
        ({"known_value": "  "}, {"known_value": ["can't be blank"]}),
        (
            {"interface_name": "*", "on": "value_stored"},
            {"on": ["must be incoming_data when interface_name is *"]},
        ),
        (
            {"interface_name": "*", "on": ...},
            {"on": ["can't be blank", "must be incoming_data when interface_name is *"]},
        ),
        (
            {"interface_name": "*", "value_match_operator": "*"},
            {"match_path": ["must be /* when interface_name is *"]},
        ),
        ({"device_id": "not an id"}, {"device_id": ["is not a valid device id"]}),
        ({"device_id": "AAAA"}, {"device_id": ["is not a valid device id"]}),
        (
            {"device_id": DEVICE + "AAAA"},
            {"device_id": ["is too long, device id must be 128 bits"]},
        ),
        ({"device_id": 7}, {"device_id": ["is invalid"]}),
        ({"group_name": "@all"}, {"group_name": ["is not valid"]}),
        ({"group_name": "~mine"}, {"group_name": ["is not valid"]}),
        ({"group_name": 1}, {"group_name": ["is invalid"]}),
        (
            {"device_id": DEVICE, "group_name": "g"},
            {"group_name": ["must not be defined if device_id is defined"]},
        ),
        (
            {"device_id": "*", "group_name": "g"},
            {"group_name": ["must not be defined if device_id is defined"]},
        ),
        (
            {"device_id": "bad", "group_name": "@g"},
            {
                "device_id": ["is not a valid device id"],
                "group_name": ["is not valid", "must not be defined if device_id is defined"],
            },
        ),
    ],
)
def test_data_trigger_rules(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _simple_errors(_data(**changes)) == expected


def test_data_trigger_valid_corner_cases() -> None:
    star_with_major = _data(
        interface_name="*", interface_major=7, match_path="/*", value_match_operator="*"
    )
    any_operator_on_a_path = _data(value_match_operator="*", known_value=...)
    trigger = parse_trigger(_trigger(star_with_major, any_operator_on_a_path), realm=REALM)

    first, second = trigger.simple_triggers
    assert isinstance(first, DataTrigger) and first.interface_major is None
    assert isinstance(second, DataTrigger) and second.known_value is None


@pytest.mark.parametrize("event", list(DeviceTriggerEvent))
def test_every_device_event_is_accepted(event: DeviceTriggerEvent) -> None:
    changes: dict[str, Any] = {"on": event.value}
    if event is DeviceTriggerEvent.INTERFACE_MINOR_UPDATED:
        changes |= {"interface_name": "org.example.Values", "interface_major": 1}
    elif event.value.startswith("interface_"):
        changes |= {"interface_name": "*"}
    trigger = parse_trigger(_trigger(_device(**changes)), realm=REALM)
    assert trigger.simple_triggers[0].on is event


def test_device_trigger_scope_and_interface() -> None:
    trigger = parse_trigger(
        _trigger(
            _device(device_id=DEVICE),
            _device(
                on="interface_added",
                group_name="g",
                interface_name="org.example.A",
                interface_major=1,
            ),
            _device(on="interface_removed", interface_name="*", interface_major=4),
            _device(on="device_registered", interface_major=4),
        ),
        realm=REALM,
    )

    assert trigger.simple_triggers == (
        DeviceTrigger(DeviceTriggerEvent.DEVICE_CONNECTED, device_id=DEVICE),
        DeviceTrigger(
            DeviceTriggerEvent.INTERFACE_ADDED,
            group_name="g",
            interface_name="org.example.A",
            interface_major=1,
        ),
        DeviceTrigger(DeviceTriggerEvent.INTERFACE_REMOVED, interface_name="*"),
        DeviceTrigger(DeviceTriggerEvent.DEVICE_REGISTERED),
    )
    assert trigger.to_json()["simple_triggers"][1] == {
        "type": "device_trigger",
        "on": "interface_added",
        "interface_name": "org.example.A",
        "interface_major": 1,
        "group_name": "g",
    }


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"on": ...}, {"on": ["can't be blank"]}),
        ({"on": "incoming_data"}, {"on": ["is invalid"]}),
        ({"on": False}, {"on": ["is invalid"]}),
        ({"device_id": "!"}, {"device_id": ["is not a valid device id"]}),
        (
            {"device_id": DEVICE + "AAAA"},
            {"device_id": ["is too long, device id must be 128 bits"]},
        ),
        ({"group_name": "@g"}, {"group_name": ["is not valid"]}),
        (
            {"device_id": DEVICE, "group_name": "g"},
            {"group_name": ["must not be defined if device_id is defined"]},
        ),
        (
            {"interface_name": "org.example.A", "interface_major": 0},
            {"interface_name": [NOT_ALLOWED]},
        ),
        ({"interface_name": "*"}, {"interface_name": [NOT_ALLOWED]}),
        (
            {"on": "incoming_introspection", "interface_name": "*"},
            {"interface_name": [NOT_ALLOWED, "must not be set in incoming_introspection triggers"]},
        ),
        ({"on": "interface_added"}, {"interface_major": ["can't be blank"]}),
        (
            {"on": "interface_added", "interface_name": "org.example.A"},
            {"interface_major": ["can't be blank"]},
        ),
        (
            {"on": "interface_removed", "interface_name": "bad name", "interface_major": 0},
            {"interface_name": ["has invalid format"]},
        ),
        (
            {"on": "interface_removed", "interface_name": "org.example.A", "interface_major": 1.5},
            {"interface_major": ["is invalid"]},
        ),
        (
            {"on": "interface_minor_updated"},
            {
                "interface_major": ["can't be blank"],
                "interface_name": ["must be set in interface_minor_updated triggers"],
            },
        ),
        (
            {"on": "interface_minor_updated", "interface_name": "*"},
            {"interface_name": ["must not be '*' in interface_minor_updated triggers"]},
        ),
    ],
)
def test_device_trigger_rules(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _simple_errors(_device(**changes)) == expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [("g", True), ("a/b c", True), ("x@y", True), ("", False), ("@g", False), ("~g", False)],
)
def test_group_names(name: str, valid: bool) -> None:
    assert is_valid_group_name(name) is valid


def _interface(
    interface_type: InterfaceType, aggregation: Aggregation = Aggregation.INDIVIDUAL
) -> Interface:
    return Interface(
        name="org.example.Values",
        major=0,
        minor=1,
        type=interface_type,
        ownership=Ownership.DEVICE,
        aggregation=aggregation,
        mappings=(Mapping(endpoint="/%{sensor}/value", type=ValueType.DOUBLE),),
    )


def _simple(**changes: Any) -> DataTrigger:
    simple = parse_trigger(_trigger(_data(**changes)), realm=REALM).simple_triggers[0]
    assert isinstance(simple, DataTrigger)
    return simple


PROPERTIES = _interface(InterfaceType.PROPERTIES)
DATASTREAM = _interface(InterfaceType.DATASTREAM)
OBJECT = _interface(InterfaceType.DATASTREAM, Aggregation.OBJECT)
ANY_PATH = {"match_path": "/*", "value_match_operator": "*"}


@pytest.mark.parametrize(
    ("interface", "changes", "error"),
    [
        (DATASTREAM, {"on": "value_change"}, InvalidDatastreamTrigger),
        (DATASTREAM, {"on": "value_change_applied"}, InvalidDatastreamTrigger),
        (DATASTREAM, {"on": "path_removed"}, InvalidDatastreamTrigger),
        (DATASTREAM, {"on": "value_change", **ANY_PATH}, InvalidDatastreamTrigger),
        (PROPERTIES, {"on": "value_change", **ANY_PATH}, UnsupportedTriggerType),
        (PROPERTIES, {"on": "value_change_applied", **ANY_PATH}, UnsupportedTriggerType),
        (OBJECT, {}, InvalidObjectAggregationTrigger),
        (
            OBJECT,
            {"match_path": "/%{sensor}/value", "value_match_operator": "*"},
            InvalidObjectAggregationTrigger,
        ),
        (OBJECT, {"on": "value_stored", **ANY_PATH}, InvalidObjectAggregationTrigger),
    ],
)
def test_interface_checks_refuse(
    interface: Interface, changes: dict[str, Any], error: type[TriggerInterfaceError]
) -> None:
    with pytest.raises(error) as caught:
        check_data_trigger_interface(_simple(**changes), interface)
    assert (
        caught.value.detail
        == {
            InvalidDatastreamTrigger: "Invalid datastream trigger",
            UnsupportedTriggerType: "Unsupported trigger type",
            InvalidObjectAggregationTrigger: "Invalid object aggregation trigger",
        }[error]
    )


@pytest.mark.parametrize(
    ("interface", "changes"),
    [
        (DATASTREAM, {}),
        (DATASTREAM, {"on": "value_stored", **ANY_PATH}),
        (DATASTREAM, {"on": "path_created"}),
        (PROPERTIES, {"on": "value_change"}),
        (PROPERTIES, {"on": "value_change_applied"}),
        (PROPERTIES, {"on": "path_removed", **ANY_PATH}),
        (PROPERTIES, {"on": "incoming_data", **ANY_PATH}),
        (OBJECT, {"on": "incoming_data", **ANY_PATH}),
    ],
)
def test_interface_checks_accept(interface: Interface, changes: dict[str, Any]) -> None:
    check_data_trigger_interface(_simple(**changes), interface)
