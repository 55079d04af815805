"""AppEngine's JSON shapes for interface values: value trees, sample lists in the three
`format`s, and LTTB downsampling of sample lists.

Astarte renders longintegers differently by place: property values and "last value" trees
follow the `allow_bigintegers` / `allow_safe_bigintegers` flags (numbers by default), while
datastream sample lists always use decimal strings. `Rendering` keeps that rule in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from astraea.core.interface import ValueType
from astraea.core.values import datetime_to_millis, format_datetime, value_to_json
from astraea.storage.base import StoredSample

T = TypeVar("T")

NUMERIC_TYPES = frozenset({ValueType.DOUBLE, ValueType.INTEGER, ValueType.LONGINTEGER})


class Format(enum.StrEnum):
    STRUCTURED = "structured"
    TABLE = "table"
    DISJOINT_TABLES = "disjoint_tables"


class Longintegers(enum.Enum):
    """How longintegers outside sample lists render."""

    NUMBERS = "numbers"
    SAFE_NUMBERS = "safe_numbers"  # numbers up to 2^52 - 1 in magnitude, strings beyond
    STRINGS = "strings"


@dataclass(frozen=True, slots=True)
class Rendering:
    longintegers: Longintegers = Longintegers.NUMBERS
    keep_milliseconds: bool = False

    def value(self, value_type: ValueType, value: object) -> object:
        """A property value or a datastream's last value."""
        return value_to_json(
            value_type,
            value,
            longinteger_as_string=self.longintegers is Longintegers.STRINGS,
            safe_longintegers=self.longintegers is Longintegers.SAFE_NUMBERS,
            keep_milliseconds=self.keep_milliseconds,
        )

    def sample_value(self, value_type: ValueType, value: object) -> object:
        """A value inside a sample list; None (an object key the sample lacks) stays null."""
        if value is None:
            return None
        return value_to_json(
            value_type,
            value,
            longinteger_as_string=True,
            keep_milliseconds=self.keep_milliseconds,
        )

    def timestamp(self, moment: datetime) -> object:
        return datetime_to_millis(moment) if self.keep_milliseconds else format_datetime(moment)


@dataclass(frozen=True, slots=True)
class SampleList:
    """A rendered sample list: `data`, plus `metadata` for the table format."""

    data: Any
    metadata: dict[str, Any] | None = None


def inflate_tree(entries: Iterable[tuple[str, object]]) -> dict[str, Any]:
    """Nests values by relative path: (`a/b`, 1) and (`a/c`, 2) → {"a": {"b": 1, "c": 2}}."""
    tree: dict[str, Any] = {}
    for relative_path, value in entries:
        *parents, leaf = relative_path.split("/")
        node = tree
        for token in parents:
            node = node.setdefault(token, {})
        node[leaf] = value
    return tree


def individual_samples(
    samples: Sequence[StoredSample],
    value_type: ValueType,
    column: str,
    output: Format,
    rendering: Rendering,
) -> SampleList:
    """Samples of one individual path; `column` (the path's last token) names the value
    column of the table format."""
    pairs = [
        (rendering.timestamp(s.value_timestamp), rendering.sample_value(value_type, s.value))
        for s in samples
    ]
    if output is Format.TABLE:
        return SampleList(
            [[timestamp, value] for timestamp, value in pairs],
            {"columns": {"timestamp": 0, column: 1}, "table_header": ["timestamp", column]},
        )
    if output is Format.DISJOINT_TABLES:
        return SampleList({"value": [[value, timestamp] for timestamp, value in pairs]})
    return SampleList([{"timestamp": timestamp, "value": value} for timestamp, value in pairs])


def object_samples(
    samples: Sequence[StoredSample],
    types: dict[str, ValueType],
    output: Format,
    rendering: Rendering,
) -> SampleList:
    """Samples of one object path; every key of `types` appears in every row, null where
    a sample lacks it (keys may be omitted unless required)."""
    rows = [
        (
            rendering.timestamp(s.value_timestamp),
            {
                key: rendering.sample_value(value_type, _object_value(s).get(key))
                for key, value_type in types.items()
            },
        )
        for s in samples
    ]
    if output is Format.TABLE:
        header = ["timestamp", *types]
        return SampleList(
            [[timestamp, *values.values()] for timestamp, values in rows],
            {"columns": {name: index for index, name in enumerate(header)}, "table_header": header},
        )
    if output is Format.DISJOINT_TABLES:
        return SampleList(
            {key: [[values[key], timestamp] for timestamp, values in rows] for key in types}
            if rows
            else {}
        )
    return SampleList([{**values, "timestamp": timestamp} for timestamp, values in rows])


def _object_value(sample: StoredSample) -> dict[str, object]:
    value = sample.value
    assert isinstance(value, dict)
    return value


def downsample(
    points: Sequence[T], threshold: int, x: Callable[[T], float], y: Callable[[T], float]
) -> list[T]:
    """Largest-Triangle-Three-Buckets: keeps the first and last points and, from each of
    `threshold - 2` equal buckets in between, the point forming the largest triangle with the
    previously kept point and the next bucket's average. Points must be ordered by x (either
    way). The kept points are original points, not interpolations."""
    count = len(points)
    if threshold < 3 or threshold >= count:
        return list(points)
    xs = [x(point) for point in points]
    ys = [y(point) for point in points]
    buckets = threshold - 2

    def edge(bucket: int) -> int:
        """First index of a bucket; the first point and the last one stand alone."""
        return bucket * (count - 2) // buckets + 1

    kept = [0]
    for index in range(buckets):
        start, end, stop = edge(index), edge(index + 1), min(edge(index + 2), count)
        mean_x = sum(xs[end:stop]) / (stop - end)
        mean_y = sum(ys[end:stop]) / (stop - end)
        ax, ay = xs[kept[-1]], ys[kept[-1]]
        areas = [
            abs((ax - mean_x) * (ys[j] - ay) - (ax - xs[j]) * (mean_y - ay))
            for j in range(start, end)
        ]
        kept.append(start + areas.index(max(areas)))
    kept.append(count - 1)
    return [points[index] for index in kept]
