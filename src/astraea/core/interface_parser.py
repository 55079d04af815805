"""Validation of untrusted interface documents into the immutable `Interface` model.

Errors are collected the way Astarte's Ecto changesets render them, so the API can return
`InterfaceValidationError.errors` verbatim as the `errors` member of a 422 body.
"""

from __future__ import annotations

import enum
import re
from typing import Any, TypeVar

from astraea.core.endpoints import EndpointTree, endpoint_tokens
from astraea.core.interface import (
    Aggregation,
    DatabaseRetentionPolicy,
    Interface,
    InterfaceType,
    Mapping,
    Ownership,
    Reliability,
    Retention,
    ValueType,
)

NAME_MAX_LENGTH = 128
DESCRIPTION_MAX_LENGTH = 1000
DOC_MAX_LENGTH = 100_000
ENDPOINT_MIN_LENGTH = 2
ENDPOINT_MAX_LENGTH = 256
MAX_MAPPINGS = 1024
TTL_MIN_SECONDS = 60
TTL_LIMIT_SECONDS = 630_720_000  # 20 years, exclusive

# Astarte's pattern with the domain part made mandatory: the documentation wants full reverse
# domain names and rejects a bare `Values`.
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9]*\.([a-zA-Z0-9][a-zA-Z0-9-]*\.)*[a-zA-Z][a-zA-Z0-9]*")
_RESERVED_NAMES = frozenset({"astarte", "control", "device"})
_IDENTIFIER = r"[a-zA-Z_][a-zA-Z0-9_]*"
_ENDPOINT = re.compile(rf"(/(%\{{{_IDENTIFIER}\}}|{_IDENTIFIER})){{1,64}}")
_PLACEHOLDER = re.compile(rf"%\{{{_IDENTIFIER}\}}")
_LEGACY_OWNERSHIP = {"producer": Ownership.DEVICE, "consumer": Ownership.SERVER}

_E = TypeVar("_E", bound=enum.Enum)
_D = TypeVar("_D")


class InterfaceValidationError(ValueError):
    """The document is not a valid interface; `errors` is the 422 body's `errors` value."""

    def __init__(self, errors: dict[str, object], message: str | None = None) -> None:
        super().__init__(message or f"invalid interface: {errors}")
        self.errors = errors


class OverlappingEndpointsError(InterfaceValidationError):
    """Two endpoints can claim the same path; Astarte reports it apart from the changeset."""

    DETAIL = "Overlapping endpoints in interface mappings"

    def __init__(self, first: str, second: str) -> None:
        super().__init__({"detail": self.DETAIL}, f"{self.DETAIL}: {first} and {second}")
        self.endpoints = (first, second)


def interface_name_key(name: str) -> str:
    """Names equal under this key collide: Astarte refuses to install both."""
    return name.lower().replace("-", "")


class _Fields:
    """Reads typed fields of one JSON object, recording errors per field like Ecto does.

    As in Ecto, null and whitespace-only strings count as absent.
    """

    def __init__(self, source: dict[str, Any]) -> None:
        self._source = source
        self.errors: dict[str, list[str]] = {}

    def add_error(self, field: str, message: str) -> None:
        messages = self.errors.setdefault(field, [])
        if message not in messages:
            messages.append(message)

    def _read(self, field: str, required: bool, legacy: str | None) -> Any:
        value = self._source.get(field)
        if value is None and legacy is not None:
            value = self._source.get(legacy)
        if isinstance(value, str) and not value.strip():
            value = None
        if value is None and required:
            self.add_error(field, "can't be blank")
        return value

    def text(
        self,
        field: str,
        *,
        max_length: int,
        min_length: int = 0,
        required: bool = False,
        legacy: str | None = None,
    ) -> str | None:
        """The string even when its length is wrong, so format checks still run on it."""
        value = self._read(field, required, legacy)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add_error(field, "is invalid")
            return None
        if len(value) < min_length:
            self.add_error(field, f"should be at least {min_length} character(s)")
        if len(value) > max_length:
            self.add_error(field, f"should be at most {max_length} character(s)")
        return value

    def integer(
        self,
        field: str,
        default: _D,
        *,
        minimum: int,
        limit: int | None = None,
        required: bool = False,
    ) -> int | _D:
        value = self._read(field, required, None)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add_error(field, "is invalid")
        elif value < minimum:
            self.add_error(field, f"must be greater than or equal to {minimum}")
        elif limit is not None and value >= limit:
            self.add_error(field, f"must be less than {limit}")
        else:
            return value
        return default

    def choice(
        self,
        field: str,
        kind: type[_E],
        default: _D,
        *,
        required: bool = False,
        legacy: str | None = None,
        aliases: dict[str, _E] | None = None,
    ) -> _E | _D:
        value = self._read(field, required, legacy)
        if value is None:
            return default
        if isinstance(value, str):
            if aliases and value in aliases:
                return aliases[value]
            try:
                return kind(value)
            except ValueError:
                pass
        self.add_error(field, "is invalid")
        return default

    def flag(self, field: str) -> bool:
        value = self._read(field, False, None)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.add_error(field, "is invalid")
            return False
        return value


def parse_interface(doc: object) -> Interface:
    """Validates every rule Astarte applies at install time (except realm-dependent limits)."""
    if not isinstance(doc, dict):
        raise InterfaceValidationError({"data": ["is invalid"]})
    fields = _Fields(doc)
    name = fields.text("interface_name", required=True, max_length=NAME_MAX_LENGTH)
    if name is not None:
        if not _NAME.fullmatch(name):
            fields.add_error("interface_name", "has invalid format")
        if name in _RESERVED_NAMES:
            fields.add_error("interface_name", "is reserved")
    major = fields.integer("version_major", None, required=True, minimum=0)
    minor = fields.integer("version_minor", None, required=True, minimum=0)
    if major == 0 and minor == 0:
        fields.add_error("version_minor", "must be > 0 if major_version is 0")
    interface_type = fields.choice("type", InterfaceType, None, required=True)
    ownership = fields.choice(
        "ownership", Ownership, None, required=True, legacy="quality", aliases=_LEGACY_OWNERSHIP
    )
    aggregation = _aggregation(fields, doc)
    if interface_type is InterfaceType.PROPERTIES and aggregation is Aggregation.OBJECT:
        fields.add_error("aggregation", "must be individual for properties interfaces")
    description = fields.text("description", max_length=DESCRIPTION_MAX_LENGTH)
    documentation = fields.text("doc", max_length=DOC_MAX_LENGTH)
    mappings, mapping_errors = _mappings(doc.get("mappings"), interface_type, aggregation)

    errors: dict[str, object] = dict(fields.errors)
    if mapping_errors:
        errors["mappings"] = mapping_errors
    if (
        errors
        or name is None
        or major is None
        or minor is None
        or interface_type is None
        or ownership is None
        or aggregation is None
        or mappings is None
    ):
        raise InterfaceValidationError(errors)
    overlap = EndpointTree(mappings).find_overlap()
    if overlap is not None:
        raise OverlappingEndpointsError(overlap[0].endpoint, overlap[1].endpoint)
    return Interface(
        name=name,
        major=major,
        minor=minor,
        type=interface_type,
        ownership=ownership,
        aggregation=aggregation,
        mappings=mappings,
        description=description,
        doc=documentation,
    )


def _aggregation(fields: _Fields, doc: dict[str, Any]) -> Aggregation | None:
    """None when invalid, so that rules depending on the aggregation stay silent."""
    aggregation = fields.choice("aggregation", Aggregation, None)
    if aggregation is None and "aggregation" not in fields.errors:
        legacy_object = doc.get("aggregate") is True
        return Aggregation.OBJECT if legacy_object else Aggregation.INDIVIDUAL
    return aggregation


def _mappings(
    raw: object, interface_type: InterfaceType | None, aggregation: Aggregation | None
) -> tuple[tuple[Mapping, ...] | None, list[str] | list[dict[str, list[str]]]]:
    """The mappings, or the `mappings` errors: a list of messages about the whole list, or
    one error map per mapping (empty for valid ones) when any mapping is invalid."""
    if raw is None:
        return None, ["can't be blank"]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        return None, ["is invalid"]
    if not raw:
        return None, ["should have at least 1 item(s)"]
    if len(raw) > MAX_MAPPINGS:
        return None, [f"should have at most {MAX_MAPPINGS} item(s)"]
    parsed = [_mapping(item, interface_type, aggregation) for item in raw]
    mappings = tuple(mapping for mapping, _ in parsed if mapping is not None)
    if len(mappings) < len(parsed):
        return None, [errors for _, errors in parsed]
    problems = _mapping_set_problems(mappings, aggregation)
    return (None, problems) if problems else (mappings, [])


def _mapping(
    doc: dict[str, Any], interface_type: InterfaceType | None, aggregation: Aggregation | None
) -> tuple[Mapping | None, dict[str, list[str]]]:
    fields = _Fields(doc)
    endpoint = fields.text(
        "endpoint",
        required=True,
        legacy="path",
        min_length=ENDPOINT_MIN_LENGTH,
        max_length=ENDPOINT_MAX_LENGTH,
    )
    if endpoint is not None and not _ENDPOINT.fullmatch(endpoint):
        fields.add_error("endpoint", "has invalid format")
    mapping_type = fields.choice("type", ValueType, None, required=True)
    policy = fields.choice(
        "database_retention_policy", DatabaseRetentionPolicy, DatabaseRetentionPolicy.NO_TTL
    )
    ttl = fields.integer(
        "database_retention_ttl", None, minimum=TTL_MIN_SECONDS, limit=TTL_LIMIT_SECONDS
    )
    # Missing endpoint or type are already errors: stand-ins let the remaining rules run.
    mapping = Mapping(
        endpoint="" if endpoint is None else endpoint,
        type=ValueType.STRING if mapping_type is None else mapping_type,
        reliability=fields.choice("reliability", Reliability, Reliability.UNRELIABLE),
        retention=fields.choice("retention", Retention, Retention.DISCARD),
        expiry=fields.integer("expiry", 0, minimum=0),
        database_retention_policy=policy,
        database_retention_ttl=ttl,
        allow_unset=fields.flag("allow_unset"),
        explicit_timestamp=fields.flag("explicit_timestamp"),
        required=fields.flag("required"),
        encrypted=fields.flag("encrypted"),
        description=fields.text("description", max_length=DESCRIPTION_MAX_LENGTH),
        doc=fields.text("doc", max_length=DOC_MAX_LENGTH),
    )
    _check_context_rules(fields, mapping, interface_type, aggregation)
    if fields.errors:
        return None, fields.errors
    return mapping, {}


# Fields meaningful only for datastreams, with the defaults properties mappings may still spell.
_DATASTREAM_DEFAULTS = Mapping(endpoint="", type=ValueType.STRING)
_DATASTREAM_ONLY = (
    "reliability",
    "retention",
    "expiry",
    "database_retention_policy",
    "database_retention_ttl",
    "explicit_timestamp",
)


def _check_context_rules(
    fields: _Fields,
    mapping: Mapping,
    interface_type: InterfaceType | None,
    aggregation: Aggregation | None,
) -> None:
    """Rules depending on the interface: a field that does not apply must keep its default."""
    if interface_type is InterfaceType.PROPERTIES:
        for field in _DATASTREAM_ONLY:
            if getattr(mapping, field) != getattr(_DATASTREAM_DEFAULTS, field):
                fields.add_error(field, "must be blank")
    else:
        if interface_type is InterfaceType.DATASTREAM and mapping.allow_unset:
            fields.add_error("allow_unset", "must be blank")
        ttl_given = mapping.database_retention_ttl is not None
        if mapping.database_retention_policy is DatabaseRetentionPolicy.NO_TTL and ttl_given:
            fields.add_error("database_retention_ttl", "must be blank")
        if (
            mapping.database_retention_policy is DatabaseRetentionPolicy.USE_TTL
            and not ttl_given
            and "database_retention_ttl" not in fields.errors
        ):
            fields.add_error("database_retention_ttl", "can't be blank")
    if aggregation is Aggregation.INDIVIDUAL and mapping.required:
        fields.add_error("required", "must be blank")


def _mapping_set_problems(
    mappings: tuple[Mapping, ...], aggregation: Aggregation | None
) -> list[str]:
    problems = []
    comparable = {_PLACEHOLDER.sub("", m.endpoint).lower() for m in mappings}
    if len(comparable) < len(mappings):
        problems.append("contain conflicting endpoints")
    if aggregation is Aggregation.OBJECT:
        if len({_object_wide_attributes(m) for m in mappings}) > 1:
            problems.append("contain conflicting attributes")
        if len({endpoint_tokens(m.endpoint)[:-1] for m in mappings}) > 1:
            problems.append("must have the same prefix in endpoints")
    return problems


def _object_wide_attributes(mapping: Mapping) -> tuple[object, ...]:
    """The attributes every mapping of an object aggregate must share."""
    return (
        mapping.reliability,
        mapping.retention,
        mapping.expiry,
        mapping.allow_unset,
        mapping.explicit_timestamp,
        mapping.database_retention_policy,
        mapping.database_retention_ttl,
    )
