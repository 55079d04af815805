"""Turning AppEngine value replies into rows for `astraea appengine devices`.

An interface root GET answers with a tree keyed by path levels whose leaves have a shape that
depends on the interface: a bare value (properties), `{value, timestamp, ...}` (individual
datastreams), or an object row or a one-row sample list (object datastreams). Where a leaf
sits is only known from the interface's endpoints, never guessed from the data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from astraea.core.endpoints import EndpointTree
from astraea.core.interface import Aggregation, Interface, InterfaceType


def snapshot_rows(interface: Interface, data: Any) -> Iterator[tuple[str, object, object]]:
    """(path, value, timestamp) of the latest value of every path in an interface root GET
    asked with `limit=1`; properties have no timestamp."""
    tree = EndpointTree(interface.mappings)
    if interface.type is InterfaceType.PROPERTIES:
        for path, value in _leaves(data, "/", lambda p: tree.resolve(p) is not None):
            yield path, value, None
    elif interface.aggregation is Aggregation.INDIVIDUAL:
        for path, sample in _leaves(data, "/", lambda p: tree.resolve(p) is not None):
            yield path, sample["value"], sample["timestamp"]
    else:
        for path, latest in _leaves(data, "/", lambda p: tree.resolve_object(p) is not None):
            # A lone object path comes as its sample list, several as their latest rows.
            fields = dict(latest[0] if isinstance(latest, list) else latest)
            timestamp = fields.pop("timestamp")
            yield path, fields, timestamp


def _leaves(node: Any, path: str, is_leaf: Callable[[str], bool]) -> Iterator[tuple[str, Any]]:
    if is_leaf(path) or not isinstance(node, dict):
        yield path, node
        return
    for key, child in node.items():
        yield from _leaves(child, f"{path.rstrip('/')}/{key}", is_leaf)


def sample_table(samples: list[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    """Columns and rows of a structured sample list: the timestamp, then `value` or each
    object key in order of appearance (a key missing from a sample is a blank cell)."""
    keys = dict.fromkeys(key for sample in samples for key in sample if key != "timestamp")
    columns = ["timestamp", *keys]
    return columns, [[cell(sample.get(column)) for column in columns] for sample in samples]


def cell(value: object) -> object:
    """A value as a table shows it: strings as they are, anything else as JSON (`true`,
    `[1, 2]`), None left for a blank cell."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
