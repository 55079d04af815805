"""Which simple triggers of a realm an event fires (pure; built for the ingest hot path).

`TriggerIndex` compiles a realm's triggers once: match paths become token patterns, known
values are converted ahead of time to the types they are compared with, and simple triggers are
filed by event kind and interface, so an event meets only its own candidates.

Value operators follow Astarte: `<incoming> OP <known>`; `*` always matches; an unset
incoming value (None) matches nothing else. `contains`/`not_contains` test substrings of
strings, byte substrings of binary blobs and membership in arrays, and are false on any other
type. Ordering operators use Erlang's term order, which Astarte inherits: numbers (integers and
doubles compared by value) < booleans < datetimes < objects < arrays < strings and blobs, arrays
compared element by element. Two deliberate improvements on Astarte, where such comparisons
never hold: a binary blob compares with a known value written in base64 and a datetime with one
written as ISO 8601 text or milliseconds since the epoch, as in REST writes.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from astraea.core.endpoints import endpoint_tokens, is_placeholder
from astraea.core.interface import ValueType
from astraea.core.triggers import (
    ANY,
    ANY_PATH,
    DataTrigger,
    DataTriggerEvent,
    DeviceTrigger,
    DeviceTriggerEvent,
    InstalledTrigger,
    SimpleTrigger,
    ValueOperator,
)
from astraea.core.values import InvalidValueError, value_from_json


@dataclass(frozen=True, slots=True)
class DataEvent:
    kind: DataTriggerEvent
    device_id: str  # canonical
    interface: str
    major: int
    path: str  # concrete path; the object path for object aggregates
    value: object = None  # canonical value (the new one for changes); None when unset


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    kind: DeviceTriggerEvent
    device_id: str  # canonical
    interface: str | None = None  # for the interface events
    major: int | None = None


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """One simple trigger an event fired: the `position`th of `installed`."""

    installed: InstalledTrigger
    position: int

    @property
    def simple_trigger(self) -> SimpleTrigger:
        return self.installed.trigger.simple_triggers[self.position]

    @property
    def simple_trigger_id(self) -> UUID:
        return self.installed.simple_trigger_ids[self.position]


class ValueCondition:
    """`<incoming> OP known`, compiled once per simple trigger."""

    __slots__ = ("_known", "_test")

    def __init__(self, value_operator: ValueOperator, known: object) -> None:
        self._test = _OPERATORS[value_operator]
        self._known = {kind: _convert_known(kind, known) for kind in _Kind}

    def __call__(self, value: object) -> bool:
        if value is None:
            return self._test is _always
        return self._test(value, self._known[_kind_of(value)])


class TriggerIndex:
    """The simple triggers of one realm, filed for lookup by event.

    Matches come back in the order of the triggers given, then of their simple triggers.
    Group-scoped triggers need the device's groups: callers pass them when `uses_groups`.
    """

    def __init__(self, triggers: Iterable[InstalledTrigger]) -> None:
        self._data: dict[tuple[DataTriggerEvent, str, int | None], list[_DataCandidate]] = {}
        self._device: dict[DeviceTriggerEvent, list[_DeviceCandidate]] = {}
        self.uses_groups = False
        order = 0
        for installed in triggers:
            for position, simple in enumerate(installed.trigger.simple_triggers):
                match = TriggerMatch(installed, position)
                self.uses_groups = self.uses_groups or simple.group_name is not None
                if isinstance(simple, DataTrigger):
                    key = (simple.on, simple.interface_name, simple.interface_major)
                    self._data.setdefault(key, []).append(_DataCandidate(order, match, simple))
                else:
                    candidate = _DeviceCandidate(order, match, simple)
                    self._device.setdefault(simple.on, []).append(candidate)
                order += 1

    def wants(
        self,
        kind: DataTriggerEvent | DeviceTriggerEvent,
        interface: str | None = None,
        major: int | None = None,
    ) -> bool:
        """Whether any simple trigger listens to this kind of event (of this interface)."""
        if isinstance(kind, DeviceTriggerEvent):
            return kind in self._device
        return (kind, interface, major) in self._data or (kind, ANY, None) in self._data

    def match_data(self, event: DataEvent, groups: Collection[str] = ()) -> list[TriggerMatch]:
        named = self._data.get((event.kind, event.interface, event.major), [])
        any_interface = self._data.get((event.kind, ANY, None), [])
        candidates = (
            sorted([*named, *any_interface]) if named and any_interface else named or any_interface
        )
        if not candidates:
            return []
        tokens = tuple(event.path[1:].split("/"))
        return [c.match for c in candidates if c.accepts(event, tokens, groups)]

    def match_device(self, event: DeviceEvent, groups: Collection[str] = ()) -> list[TriggerMatch]:
        candidates = self._device.get(event.kind, [])
        return [c.match for c in candidates if c.accepts(event, groups)]


class _Kind(enum.Enum):
    """What a known value is converted to before it meets an incoming value."""

    PLAIN = None
    BLOB = ValueType.BINARYBLOB
    DATETIME = ValueType.DATETIME


def _kind_of(value: object) -> _Kind:
    """Arrays are homogeneous: their first item tells their kind."""
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bytes):
        return _Kind.BLOB
    if isinstance(sample, datetime):
        return _Kind.DATETIME
    return _Kind.PLAIN


def _convert_known(kind: _Kind, known: object) -> object:
    """The known value as REST would read it for that type, or as written if it cannot be."""
    if kind.value is None:
        return known
    value_type = ValueType(f"{kind.value}array") if isinstance(known, list) else kind.value
    try:
        return value_from_json(value_type, known)
    except InvalidValueError:
        return known


_NUMBERS = (int, float)  # exact types: a bool is an atom


def _rank(value: object) -> int:
    """Erlang's term order between types (booleans and null are atoms)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 0
    if isinstance(value, datetime):
        return 2
    if isinstance(value, dict):
        return 3
    if isinstance(value, list | tuple):
        return 4
    return 5


def compare_terms(left: Any, right: Any) -> int:
    """-1, 0 or 1 as `left` sorts before, with or after `right` in Erlang's term order."""
    if type(left) in _NUMBERS and type(right) in _NUMBERS:  # the common case, first
        return int((left > right) - (left < right))
    left_rank, right_rank = _rank(left), _rank(right)
    if left_rank != right_rank:
        return -1 if left_rank < right_rank else 1
    if left_rank == 1:  # atoms sort by name: false < nil < true
        left, right = _ATOM_NAMES[left], _ATOM_NAMES[right]
    elif left_rank == 3:
        return _compare_maps(left, right)
    elif left_rank == 4:
        return _compare_lists(left, right)
    elif left_rank == 5:
        left, right = _binary(left), _binary(right)
    return int((left > right) - (left < right))


_ATOM_NAMES = {False: "false", None: "nil", True: "true"}


def _binary(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def _compare_lists(left: list[Any], right: list[Any]) -> int:
    for left_item, right_item in zip(left, right, strict=False):
        order = compare_terms(left_item, right_item)
        if order:
            return order
    return (len(left) > len(right)) - (len(left) < len(right))


def _compare_maps(left: dict[str, Any], right: dict[str, Any]) -> int:
    """Erlang orders maps by size, then keys, then the values in key order."""
    if len(left) != len(right):
        return -1 if len(left) < len(right) else 1
    left_keys, right_keys = sorted(left), sorted(right)
    order = _compare_lists(left_keys, right_keys)
    if order:
        return order
    return _compare_lists([left[k] for k in left_keys], [right[k] for k in right_keys])


def _always(_: object, __: object) -> bool:
    return True


def _ordering(test: Callable[[int, int], bool]) -> Callable[[object, object], bool]:
    def check(value: object, known: object) -> bool:
        return test(compare_terms(value, known), 0)

    return check


def _contains(value: object, known: object) -> bool | None:
    """None when the pair cannot be tested: Astarte fires neither operator on it."""
    if isinstance(value, str | bytes):
        return known in value if type(known) is type(value) else None  # type: ignore[operator]
    if isinstance(value, list):
        return any(compare_terms(item, known) == 0 for item in value)
    return None


def _contains_operator(value: object, known: object) -> bool:
    return _contains(value, known) is True


def _not_contains_operator(value: object, known: object) -> bool:
    return _contains(value, known) is False


_OPERATORS: dict[ValueOperator, Callable[[object, object], bool]] = {
    ValueOperator.ANY: _always,
    ValueOperator.EQUAL_TO: _ordering(operator.eq),
    ValueOperator.NOT_EQUAL_TO: _ordering(operator.ne),
    ValueOperator.GREATER_THAN: _ordering(operator.gt),
    ValueOperator.GREATER_OR_EQUAL_TO: _ordering(operator.ge),
    ValueOperator.LESS_THAN: _ordering(operator.lt),
    ValueOperator.LESS_OR_EQUAL_TO: _ordering(operator.le),
    ValueOperator.CONTAINS: _contains_operator,
    ValueOperator.NOT_CONTAINS: _not_contains_operator,
}


def _path_pattern(match_path: str) -> tuple[str | None, ...] | None:
    """None for `/*`; else one literal per level, None where a placeholder takes any token."""
    if match_path == ANY_PATH:
        return None
    return tuple(None if is_placeholder(t) else t for t in endpoint_tokens(match_path))


class _DataCandidate:
    __slots__ = ("condition", "device_id", "group", "match", "order", "path")

    def __init__(self, order: int, match: TriggerMatch, trigger: DataTrigger) -> None:
        self.order = order
        self.match = match
        self.device_id = trigger.device_id
        self.group = trigger.group_name
        self.path = _path_pattern(trigger.match_path)
        self.condition = ValueCondition(trigger.value_match_operator, trigger.known_value)

    def __lt__(self, other: _DataCandidate) -> bool:
        return self.order < other.order

    def accepts(self, event: DataEvent, tokens: tuple[str, ...], groups: Collection[str]) -> bool:
        if self.device_id is not None and self.device_id != event.device_id:
            return False
        if self.group is not None and self.group not in groups:
            return False
        if self.path is not None and not _path_matches(self.path, tokens):
            return False
        return self.condition(event.value)


def _path_matches(pattern: tuple[str | None, ...], tokens: tuple[str, ...]) -> bool:
    return len(pattern) == len(tokens) and all(
        literal is None or literal == token for literal, token in zip(pattern, tokens, strict=True)
    )


class _DeviceCandidate:
    __slots__ = ("device_id", "group", "interface", "match", "order")

    def __init__(self, order: int, match: TriggerMatch, trigger: DeviceTrigger) -> None:
        self.order = order
        self.match = match
        self.device_id = trigger.device_id
        self.group = trigger.group_name
        named = trigger.interface_name not in (None, ANY)
        self.interface = (trigger.interface_name, trigger.interface_major) if named else None

    def accepts(self, event: DeviceEvent, groups: Collection[str]) -> bool:
        if self.device_id is not None and self.device_id != event.device_id:
            return False
        if self.group is not None and self.group not in groups:
            return False
        return self.interface is None or self.interface == (event.interface, event.major)
