"""Reading interface values (AppEngine GET): query options, Astarte's response shapes, and
links to the next page of a sample list.

Paging is Astraea's addition (Astarte has none): when a datastream query returns as many
samples as its effective limit (the caller's, capped at the server maximum, or the maximum),
the reply carries `links.next`, the same request with a moved time bound. Ascending pages
continue with `since_after=<last value timestamp>` (replacing `since`), newest-first pages
with `to=<oldest value timestamp>`; bounds are written to the microsecond, so pages neither
overlap nor skip, except for samples sharing the boundary timestamp exactly, which the next
page leaves out. Links are relative to the API root, like the device list's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from astraea.api.appengine_values_target import (
    ValueTarget,
    check_readable,
    endpoint_not_found,
    path_not_found,
)
from astraea.api.changeset import Changeset
from astraea.api.errors import ValidationFailed
from astraea.api.value_rendering import (
    NUMERIC_TYPES,
    Format,
    Longintegers,
    Rendering,
    SampleList,
    downsample,
    individual_samples,
    inflate_tree,
    object_samples,
)
from astraea.core.endpoints import InvalidPathError
from astraea.core.interface import Aggregation, InterfaceType, Mapping, ValueType
from astraea.core.values import datetime_to_millis
from astraea.storage.base import StoredSample, ValueRepository

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
# Ecto's boolean cast.
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_BOUNDS = ("since", "since_after", "to")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ValueQuery:
    since: datetime | None = None
    since_after: datetime | None = None
    to: datetime | None = None
    limit: int | None = None  # as asked; None when absent
    downsample_to: int | None = None
    downsample_key: str | None = None
    output: Format = Format.STRUCTURED
    rendering: Rendering = field(default_factory=Rendering)

    @property
    def newest_first(self) -> bool:
        """Astarte's order: the newest `limit` samples, newest first, when the caller gives a
        limit and no lower bound; oldest first otherwise."""
        return self.limit is not None and self.since is None and self.since_after is None


@dataclass(frozen=True, slots=True)
class ValuesReply:
    data: Any
    metadata: dict[str, Any] | None = None
    # (query parameter, value timestamp) that continues a sample list that hit its limit.
    next_bound: tuple[str, datetime] | None = None


def parse_query(params: QueryParams) -> ValueQuery:
    """The GET options, or a 422 changeset listing every invalid one; empty values count as
    absent, as Phoenix parameters cast by Ecto do."""
    changes = Changeset({key: value for key, value in params.items() if value})
    since = _cast(changes, "since", _moment)
    since_after = _cast(changes, "since_after", _moment)
    if since is not None and since_after is not None:
        changes.add("since_after", "conflicts already set parameter")
    limit = _cast(changes, "limit", _integer)
    if limit is not None and limit < 0:
        changes.add("limit", "must be greater than or equal to 0")
    downsample_to = _cast(changes, "downsample_to", _integer)
    if downsample_to is not None and downsample_to <= 2:
        changes.add("downsample_to", "must be greater than 2")
    output = _cast(changes, "format", Format) or Format.STRUCTURED
    query = ValueQuery(
        since=since,
        since_after=since_after,
        to=_cast(changes, "to", _moment),
        limit=limit,
        downsample_to=downsample_to,
        downsample_key=changes.data.get("downsample_key"),
        output=output,
        rendering=Rendering(
            _longintegers(
                _cast(changes, "allow_bigintegers", _boolean),
                _cast(changes, "allow_safe_bigintegers", _boolean),
            ),
            keep_milliseconds=bool(_cast(changes, "keep_milliseconds", _boolean)),
        ),
    )
    changes.raise_if_invalid()
    return query


def _cast(changes: Changeset, name: str, parse: Callable[[str], T]) -> T | None:
    raw = changes.data.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except (KeyError, ValueError, OverflowError):
        changes.add(name, "is invalid")
        return None


def _moment(text: str) -> datetime:
    """ISO 8601, to the microsecond (so that paging bounds are exact); no offset means UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _boolean(text: str) -> bool:
    return _BOOLEANS[text]


def _longintegers(allow_big: bool | None, allow_safe: bool | None) -> Longintegers:
    """`allow_bigintegers=true` wins, then `allow_safe_bigintegers=true`; numbers by default,
    strings when big integers are explicitly refused."""
    if allow_big:
        return Longintegers.NUMBERS
    if allow_safe:
        return Longintegers.SAFE_NUMBERS
    return Longintegers.STRINGS if allow_big is False else Longintegers.NUMBERS


def next_link(base: str, params: QueryParams, bound: tuple[str, datetime]) -> str:
    """The request again with the time bound moved past the page just returned."""
    name, moment = bound
    query = {key: value for key, value in params.items() if key not in (*_BOUNDS[:2], name)}
    query[name] = f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"
    return f"{base}?{urlencode(sorted(query.items()))}"


class ValueReader:
    """Answers one GET; `max_limit` caps every sample list."""

    def __init__(
        self, values: ValueRepository, query: ValueQuery, *, max_limit: int, now: datetime
    ) -> None:
        self._values = values
        self._query = query
        self._max_limit = max_limit
        self._now = now

    async def read(self, target: ValueTarget) -> ValuesReply:
        check_readable(target)
        if target.interface.type is InterfaceType.PROPERTIES:
            return ValuesReply(await self._properties(target))
        if target.interface.aggregation is Aggregation.OBJECT:
            return await self._objects(target)
        return await self._individual_datastream(target)

    async def _properties(self, target: ValueTarget) -> object:
        """Root and partial paths give a tree, a full path its bare value; nothing set → {}.
        Timestamps play no part, so `keep_milliseconds` is ignored, as in Astarte."""
        rendering = replace(self._query.rendering, keep_milliseconds=False)
        stored = await self._values.list_properties(*_interface_key(target))
        entries: dict[str, object] = {}
        for prop in stored:
            relative = _relative(target.path, prop.path)
            mapping = target.tree.resolve(prop.path)
            if relative is not None and mapping is not None:
                entries[relative] = rendering.value(mapping.type, prop.value)
        if "" in entries:
            return entries[""]
        return inflate_tree(entries.items())

    async def _individual_datastream(self, target: ValueTarget) -> ValuesReply:
        """A full path gives its samples; the root and partial paths the tree of every path's
        last sample below them (Astarte answers partial datastream paths with an error; a
        tree is the natural reading of the root's shape)."""
        mapping = None if target.path == "/" else target.tree.resolve(target.path)
        if mapping is not None:
            return await self._individual_samples(target, mapping)
        rendering = self._query.rendering
        entries = []
        for last in await self._last_samples(target, Aggregation.INDIVIDUAL):
            relative = _relative(target.path, last.path)
            mapping = target.tree.resolve(last.path)
            if relative is None or mapping is None:
                continue
            entry = {
                "value": rendering.value(mapping.type, last.value),
                "timestamp": rendering.timestamp(last.value_timestamp),
                "reception_timestamp": rendering.timestamp(last.reception_timestamp),
            }
            entries.append((relative, entry))
        if not entries and target.path != "/":
            raise path_not_found()
        return ValuesReply(inflate_tree(entries))

    async def _individual_samples(self, target: ValueTarget, mapping: Mapping) -> ValuesReply:
        query = self._query
        if query.downsample_to is not None and mapping.type not in NUMERIC_TYPES:
            raise ValidationFailed({"downsample_to": ["is invalid for non-numeric values"]})
        samples, bound = await self._samples(target, target.path, Aggregation.INDIVIDUAL)
        if not samples:
            raise path_not_found()
        if query.downsample_to is not None:
            samples = downsample(samples, query.downsample_to, _x, lambda s: _number(s.value))
        column = target.path.rsplit("/", 1)[1]
        rendered = individual_samples(samples, mapping.type, column, query.output, query.rendering)
        return ValuesReply(rendered.data, rendered.metadata, bound)

    async def _objects(self, target: ValueTarget) -> ValuesReply:
        """At the object path: its samples. At the root: nothing stored → {}; one path → its
        samples (below its path's tokens); more → the tree of each path's latest sample, which
        the time bounds do not select."""
        if target.path != "/":
            reply = await self._object_samples(target, target.path)
            if reply is None:
                raise path_not_found()
            return reply
        latest = await self._last_samples(target, Aggregation.OBJECT)
        if len(latest) == 1:
            reply = await self._object_samples(target, latest[0].path)
            relative = latest[0].path[1:]
            if reply is None:
                return ValuesReply({})
            if not relative:
                return reply
            return replace(reply, data=inflate_tree([(relative, reply.data)]))
        entries = []
        for last in latest:
            types = _object_types(target, last.path)
            if types is not None:
                rendered = object_samples([last], types, self._query.output, self._query.rendering)
                entries.append((last.path[1:], _only_row(rendered)))
        return ValuesReply(inflate_tree(entries))

    async def _object_samples(self, target: ValueTarget, path: str) -> ValuesReply | None:
        """The samples of one object path; None when none is selected."""
        query = self._query
        types = _object_types(target, path)
        if types is None:
            # A prefix of the object paths or a full endpoint: Astarte finds no samples there.
            raise path_not_found() if target.tree.resolve_partial(path) else endpoint_not_found()
        key = query.downsample_key
        if query.downsample_to is not None:
            if key is None:
                raise ValidationFailed({"downsample_key": ["can't be blank"]})
            if types.get(key) not in NUMERIC_TYPES:
                raise ValidationFailed({"downsample_key": ["is invalid"]})
        samples, bound = await self._samples(target, path, Aggregation.OBJECT)
        if query.downsample_to is not None:
            # The downsampled series is that of `key`: samples without it take no part.
            series = [s for s in samples if _object_field(s, key) is not None]
            samples = downsample(
                series, query.downsample_to, _x, lambda s: _number(_object_field(s, key))
            )
        if not samples:
            return None
        rendered = object_samples(samples, types, query.output, query.rendering)
        return ValuesReply(rendered.data, rendered.metadata, bound)

    async def _samples(
        self, target: ValueTarget, path: str, aggregation: Aggregation
    ) -> tuple[list[StoredSample], tuple[str, datetime] | None]:
        """One path's samples and, when they fill the limit, the bound that continues them."""
        query = self._query
        limit = self._max_limit if query.limit is None else min(query.limit, self._max_limit)
        samples = await self._values.samples(
            *_interface_key(target),
            path,
            aggregation,
            now=self._now,
            since=query.since,
            since_after=query.since_after,
            to=query.to,
            limit=limit,
            newest_first=query.newest_first,
        )
        bound = None
        if samples and len(samples) == limit:
            bound = ("to" if query.newest_first else "since_after", samples[-1].value_timestamp)
        return samples, bound

    async def _last_samples(
        self, target: ValueTarget, aggregation: Aggregation
    ) -> list[StoredSample]:
        return await self._values.last_samples(*_interface_key(target), aggregation, now=self._now)


def _interface_key(target: ValueTarget) -> tuple[str, str, str, int]:
    return (target.realm, target.device.device_id, target.interface.name, target.interface.major)


def _relative(base: str, path: str) -> str | None:
    """`path` relative to `base` (`""` when equal), or None when it is not below it."""
    if base == "/":
        return path[1:]
    if path == base:
        return ""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return None


def _object_types(target: ValueTarget, path: str) -> dict[str, ValueType] | None:
    try:
        members = target.tree.resolve_object(path)
    except InvalidPathError:
        raise endpoint_not_found() from None
    if members is None:
        return None
    return {key: mapping.type for key, mapping in members.items()}


def _object_field(sample: StoredSample, key: str | None) -> object:
    value = sample.value
    return value.get(key) if isinstance(value, dict) else None


def _only_row(rendered: SampleList) -> object:
    """A one-sample list without its list: a row, or the disjoint tables of one sample."""
    data = rendered.data
    return data[0] if isinstance(data, list) else data


def _x(sample: StoredSample) -> float:
    return float(datetime_to_millis(sample.value_timestamp))


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)
