"""Triggers: validation of untrusted trigger JSON into immutable models, and rendering.

A trigger pairs an action (`astraea.core.trigger_actions`) with the simple triggers that fire
it, optionally naming a delivery policy. `parse_trigger` applies the rules of Astarte's Ecto
changesets and collects their messages in the same shape, so Realm Management can return
`TriggerValidationError.errors` as a 422 body's `errors`. The checks that need the installed
interface (Astarte's 400 answers) are `check_data_trigger_interface`.

Canonical form: `device_id` `*` means any device, exactly like no `device_id`, so both kinds of
simple trigger keep and render it as absent; device ids render in their canonical spelling.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from astraea.core.device_id import ExtendedIdNotAllowed, InvalidDeviceId, canonical_device_id
from astraea.core.interface import Aggregation, Interface, InterfaceType
from astraea.core.interface_parser import _ENDPOINT as _MATCH_PATH
from astraea.core.interface_parser import _NAME as _INTERFACE_NAME
from astraea.core.trigger_actions import (
    Action,
    ActionValidationError,
    FieldReader,
    action_to_json,
    parse_action,
)

ANY = "*"  # any interface, any device, or the operator that accepts any value
ANY_PATH = "/*"
POLICY_MAX_LENGTH = 128
# `@` names are reserved for implicit policies (`@default`).
_POLICY_NAME = re.compile(r"(?!@).+")

_E = TypeVar("_E", bound=enum.StrEnum)


class DataTriggerEvent(enum.StrEnum):
    INCOMING_DATA = "incoming_data"
    VALUE_CHANGE = "value_change"
    VALUE_CHANGE_APPLIED = "value_change_applied"
    PATH_CREATED = "path_created"
    PATH_REMOVED = "path_removed"
    VALUE_STORED = "value_stored"


class DeviceTriggerEvent(enum.StrEnum):
    DEVICE_CONNECTED = "device_connected"
    DEVICE_DISCONNECTED = "device_disconnected"
    DEVICE_EMPTY_CACHE_RECEIVED = "device_empty_cache_received"
    DEVICE_ERROR = "device_error"
    INCOMING_INTROSPECTION = "incoming_introspection"
    INTERFACE_ADDED = "interface_added"
    INTERFACE_REMOVED = "interface_removed"
    INTERFACE_MINOR_UPDATED = "interface_minor_updated"
    DEVICE_REGISTERED = "device_registered"
    DEVICE_DELETION_STARTED = "device_deletion_started"
    DEVICE_DELETION_FINISHED = "device_deletion_finished"


# The device events that concern one interface, so a trigger may name it.
INTERFACE_EVENTS = frozenset(
    {
        DeviceTriggerEvent.INTERFACE_ADDED,
        DeviceTriggerEvent.INTERFACE_REMOVED,
        DeviceTriggerEvent.INTERFACE_MINOR_UPDATED,
    }
)
# Events only properties produce: a datastream never changes or unsets a stored value.
_PROPERTIES_ONLY_EVENTS = frozenset(
    {
        DataTriggerEvent.VALUE_CHANGE,
        DataTriggerEvent.VALUE_CHANGE_APPLIED,
        DataTriggerEvent.PATH_REMOVED,
    }
)
_CHANGE_EVENTS = frozenset({DataTriggerEvent.VALUE_CHANGE, DataTriggerEvent.VALUE_CHANGE_APPLIED})
_INTERFACE_NAME_NOT_ALLOWED = (
    "is allowed only in if 'on' is one of interface_minor_updated, interface_removed, "
    "interface_added"
)


class ValueOperator(enum.StrEnum):
    ANY = "*"
    EQUAL_TO = "=="
    NOT_EQUAL_TO = "!="
    GREATER_THAN = ">"
    GREATER_OR_EQUAL_TO = ">="
    LESS_THAN = "<"
    LESS_OR_EQUAL_TO = "<="
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"


@dataclass(frozen=True, slots=True)
class DataTrigger:
    on: DataTriggerEvent
    interface_name: str  # `*`: any interface
    interface_major: int | None  # None exactly when interface_name is `*`
    match_path: str  # `/*`: any path; else an endpoint pattern, placeholders match any token
    value_match_operator: ValueOperator
    known_value: Any = None  # JSON value; None exactly when the operator is `*`
    device_id: str | None = None  # canonical id; None: any device
    group_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "data_trigger",
            "on": self.on.value,
            "interface_name": self.interface_name,
            "match_path": self.match_path,
            "value_match_operator": self.value_match_operator.value,
        }
        if self.value_match_operator is not ValueOperator.ANY:
            out["known_value"] = self.known_value
        if self.interface_major is not None:
            out["interface_major"] = self.interface_major
        return _with_scope(out, self.device_id, self.group_name)


@dataclass(frozen=True, slots=True)
class DeviceTrigger:
    on: DeviceTriggerEvent
    device_id: str | None = None  # canonical id; None: any device
    group_name: str | None = None
    # Only for INTERFACE_EVENTS: None or `*` matches any interface (major None then).
    interface_name: str | None = None
    interface_major: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Astarte renders only `type` and `on` plus the scope; the interface is rendered too
        when set, so that a rendered trigger installs again as the same trigger."""
        out: dict[str, Any] = {"type": "device_trigger", "on": self.on.value}
        if self.interface_name is not None:
            out["interface_name"] = self.interface_name
        if self.interface_major is not None:
            out["interface_major"] = self.interface_major
        return _with_scope(out, self.device_id, self.group_name)


SimpleTrigger = DataTrigger | DeviceTrigger


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    action: Action
    simple_triggers: tuple[SimpleTrigger, ...]
    policy: str | None = None  # None: the implicit `@default` policy

    def to_json(self) -> dict[str, Any]:
        """The form Realm Management renders, which is also the stored form:
        `parse_trigger(t.to_json(), realm=...) == t`."""
        out: dict[str, Any] = {
            "name": self.name,
            "action": action_to_json(self.action),
            "simple_triggers": [simple.to_json() for simple in self.simple_triggers],
        }
        if self.policy is not None:
            out["policy"] = self.policy
        return out


@dataclass(frozen=True, slots=True)
class InstalledTrigger:
    """A trigger as storage holds it: the ids events carry (`x_astarte_parent_trigger_id`,
    `x_astarte_simple_trigger_id`), one simple trigger id per position."""

    trigger: Trigger
    trigger_id: uuid.UUID
    simple_trigger_ids: tuple[uuid.UUID, ...]


class TriggerValidationError(ValueError):
    """The document is not a valid trigger; `errors` is the 422 body's `errors` value.

    `simple_triggers` errors are either messages about the list or, as for Ecto embeds, one
    error map per simple trigger (empty for the valid ones); `action` errors map its fields.
    """

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(f"invalid trigger: {errors}")
        self.errors = errors


class TriggerInterfaceError(ValueError):
    """A valid data trigger that the installed interface cannot produce events for
    (Realm Management answers 400 with `detail`)."""

    detail = "Invalid trigger"

    def __init__(self) -> None:
        super().__init__(self.detail)


class InvalidDatastreamTrigger(TriggerInterfaceError):
    detail = "Invalid datastream trigger"


class UnsupportedTriggerType(TriggerInterfaceError):
    detail = "Unsupported trigger type"


class InvalidObjectAggregationTrigger(TriggerInterfaceError):
    detail = "Invalid object aggregation trigger"


def parse_trigger(obj: object, *, realm: str) -> Trigger:
    """Validates a trigger document of `realm` (AMQP exchanges must embed the realm name)."""
    if not isinstance(obj, dict):
        raise TriggerValidationError({"data": ["is invalid"]})
    fields = FieldReader(obj)
    name = fields.text("name", required=True)
    policy = fields.text("policy")
    if policy is not None:
        if len(policy) > POLICY_MAX_LENGTH:
            fields.add("policy", f"should be at most {POLICY_MAX_LENGTH} character(s)")
        if not _POLICY_NAME.fullmatch(policy):
            fields.add("policy", "has invalid format")
    errors: dict[str, Any] = dict(fields.errors)
    action: Action | None = None
    try:
        action = parse_action(obj.get("action"), realm=realm)
    except ActionValidationError as exc:
        errors["action"] = _action_errors(exc.errors)
    simple_triggers, simple_errors = _simple_triggers(obj.get("simple_triggers"))
    if simple_errors:
        errors["simple_triggers"] = simple_errors
    if errors or name is None or action is None or simple_triggers is None:
        raise TriggerValidationError(errors)
    return Trigger(name=name, action=action, simple_triggers=simple_triggers, policy=policy)


def check_data_trigger_interface(trigger: DataTrigger, interface: Interface) -> None:
    """Raises the `TriggerInterfaceError` Realm Management answers for a data trigger on
    `interface` (the installed interface the trigger names)."""
    if interface.aggregation is Aggregation.OBJECT:
        # Object aggregates are published whole: no single value to compare, no stored path.
        if (
            trigger.on is not DataTriggerEvent.INCOMING_DATA
            or trigger.value_match_operator is not ValueOperator.ANY
            or trigger.match_path != ANY_PATH
        ):
            raise InvalidObjectAggregationTrigger()
    elif interface.type is InterfaceType.DATASTREAM and trigger.on in _PROPERTIES_ONLY_EVENTS:
        raise InvalidDatastreamTrigger()
    elif trigger.match_path == ANY_PATH and trigger.on in _CHANGE_EVENTS:
        # Astarte's ingestion cannot evaluate value changes on every path at once.
        raise UnsupportedTriggerType()


def _action_errors(errors: dict[str, list[str]]) -> Any:
    """`parse_action` reports a document of no known kind under `action` itself and field
    problems by field name; the trigger nests either under its `action` field."""
    return errors["action"] if set(errors) == {"action"} else errors


def _simple_triggers(raw: object) -> tuple[tuple[SimpleTrigger, ...] | None, Any]:
    """The simple triggers, or their errors: messages about the list or one map per item."""
    if raw is None or raw == []:
        return None, ["can't be blank"]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        return None, ["is invalid"]
    parsed = [_simple_trigger(item) for item in raw]
    triggers = tuple(trigger for trigger, _ in parsed if trigger is not None)
    if len(triggers) < len(parsed):
        return None, [errors for _, errors in parsed]
    return triggers, None


def _simple_trigger(doc: dict[str, Any]) -> tuple[SimpleTrigger | None, dict[str, list[str]]]:
    kind = doc.get("type")
    if kind == "data_trigger":
        return _data_trigger(FieldReader(doc))
    if kind == "device_trigger":
        return _device_trigger(FieldReader(doc))
    fields = FieldReader(doc)
    if fields.text("type", required=True) is not None:
        fields.add("type", "is invalid")
    return None, fields.errors


def _data_trigger(fields: FieldReader) -> tuple[DataTrigger | None, dict[str, list[str]]]:
    """Astarte's data trigger changeset, in its order (the order of each field's messages)."""
    interface_name = fields.text("interface_name", required=True)
    major = fields.integer("interface_major")
    on = fields.text("on", required=True)
    operator = fields.text("value_match_operator", required=True)
    match_path = fields.text("match_path", required=True)
    if interface_name == ANY:
        if on != DataTriggerEvent.INCOMING_DATA:
            fields.add("on", "must be incoming_data when interface_name is *")
        elif match_path != ANY_PATH:
            fields.add("match_path", "must be /* when interface_name is *")
        major = None
    else:
        _check_interface_name(fields, interface_name)
        if major is None:
            _require(fields, "interface_major")
    if match_path == ANY_PATH:
        if operator != ValueOperator.ANY:
            fields.add("value_match_operator", "must be * when match_path is /*")
    elif match_path is not None and not _MATCH_PATH.fullmatch(match_path):
        fields.add("match_path", "has invalid format")
    event = _choice(fields, "on", DataTriggerEvent, on)
    value_operator = _choice(fields, "value_match_operator", ValueOperator, operator)
    device_id, group_name = _scope(fields)
    known_value = None
    if operator != ValueOperator.ANY:
        if fields.present("known_value"):
            known_value = fields.source["known_value"]
        else:
            fields.add("known_value", "can't be blank")
    if (
        fields.errors
        or interface_name is None
        or match_path is None
        or event is None
        or value_operator is None
    ):
        return None, fields.errors
    return DataTrigger(
        on=event,
        interface_name=interface_name,
        interface_major=major,
        match_path=match_path,
        value_match_operator=value_operator,
        known_value=known_value,
        device_id=device_id,
        group_name=group_name,
    ), {}


def _device_trigger(fields: FieldReader) -> tuple[DeviceTrigger | None, dict[str, list[str]]]:
    """Astarte's device trigger changeset, in its order."""
    on = fields.text("on", required=True)
    interface_name = fields.text("interface_name")
    major = fields.integer("interface_major")
    event = _choice(fields, "on", DeviceTriggerEvent, on)
    device_id, group_name = _scope(fields)
    names_interface = event in INTERFACE_EVENTS
    if interface_name is not None and not names_interface:
        fields.add("interface_name", _INTERFACE_NAME_NOT_ALLOWED)
    if names_interface:
        if interface_name == ANY:
            major = None
        else:
            _check_interface_name(fields, interface_name)
            if major is None:
                _require(fields, "interface_major")
    else:
        major = None
    if event is DeviceTriggerEvent.INCOMING_INTROSPECTION and interface_name is not None:
        fields.add("interface_name", "must not be set in incoming_introspection triggers")
    if event is DeviceTriggerEvent.INTERFACE_MINOR_UPDATED:
        if interface_name is None:
            fields.add("interface_name", "must be set in interface_minor_updated triggers")
        elif interface_name == ANY:
            fields.add("interface_name", "must not be '*' in interface_minor_updated triggers")
    if fields.errors or event is None:
        return None, fields.errors
    return DeviceTrigger(
        on=event,
        device_id=device_id,
        group_name=group_name,
        interface_name=interface_name,
        interface_major=major,
    ), {}


def _require(fields: FieldReader, field: str) -> None:
    """Ecto's `validate_required` on a field read earlier: silent if its read failed."""
    if field not in fields.errors:
        fields.add(field, "can't be blank")


def _check_interface_name(fields: FieldReader, name: str | None) -> None:
    if name is not None and not _INTERFACE_NAME.fullmatch(name):
        fields.add("interface_name", "has invalid format")


def _choice(fields: FieldReader, field: str, kind: type[_E], value: str | None) -> _E | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        fields.add(field, "is invalid")
        return None


def _scope(fields: FieldReader) -> tuple[str | None, str | None]:
    """The canonical device id (None for `*` or absent) and the group name."""
    device_id = fields.text("device_id")
    group_name = fields.text("group_name")
    canonical = None
    if device_id is not None and device_id != ANY:
        try:
            canonical = canonical_device_id(device_id)
        except ExtendedIdNotAllowed:
            fields.add("device_id", "is too long, device id must be 128 bits")
        except InvalidDeviceId:
            fields.add("device_id", "is not a valid device id")
    if group_name is not None and not is_valid_group_name(group_name):
        fields.add("group_name", "is not valid")
    if device_id is not None and group_name is not None:
        fields.add("group_name", "must not be defined if device_id is defined")
    return canonical, group_name


def is_valid_group_name(name: str) -> bool:
    """Group names are any non-empty string not starting with the reserved `@` or `~`."""
    return bool(name) and not name.startswith(("@", "~"))


def _with_scope(out: dict[str, Any], device_id: str | None, group: str | None) -> dict[str, Any]:
    if group is not None:
        out["group_name"] = group
    if device_id is not None:
        out["device_id"] = device_id
    return out
