"""Interface and mapping model shared by every component.

Parsing and validation of interface documents live in `astraea.core.interface_parser`;
this module holds only the immutable model and its canonical JSON rendering.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class InterfaceType(enum.StrEnum):
    DATASTREAM = "datastream"
    PROPERTIES = "properties"


class Ownership(enum.StrEnum):
    DEVICE = "device"
    SERVER = "server"


class Aggregation(enum.StrEnum):
    INDIVIDUAL = "individual"
    OBJECT = "object"


class Reliability(enum.StrEnum):
    UNRELIABLE = "unreliable"
    GUARANTEED = "guaranteed"
    UNIQUE = "unique"

    @property
    def qos(self) -> int:
        return {"unreliable": 0, "guaranteed": 1, "unique": 2}[self.value]


class Retention(enum.StrEnum):
    DISCARD = "discard"
    VOLATILE = "volatile"
    STORED = "stored"


class DatabaseRetentionPolicy(enum.StrEnum):
    NO_TTL = "no_ttl"
    USE_TTL = "use_ttl"


class ValueType(enum.StrEnum):
    DOUBLE = "double"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    LONGINTEGER = "longinteger"
    STRING = "string"
    BINARYBLOB = "binaryblob"
    DATETIME = "datetime"
    DOUBLEARRAY = "doublearray"
    INTEGERARRAY = "integerarray"
    BOOLEANARRAY = "booleanarray"
    LONGINTEGERARRAY = "longintegerarray"
    STRINGARRAY = "stringarray"
    BINARYBLOBARRAY = "binaryblobarray"
    DATETIMEARRAY = "datetimearray"

    @property
    def is_array(self) -> bool:
        return self.value.endswith("array")

    @property
    def scalar(self) -> ValueType:
        return ValueType(self.value.removesuffix("array")) if self.is_array else self


@dataclass(frozen=True, slots=True)
class Mapping:
    endpoint: str
    type: ValueType
    reliability: Reliability = Reliability.UNRELIABLE
    retention: Retention = Retention.DISCARD
    expiry: int = 0
    database_retention_policy: DatabaseRetentionPolicy = DatabaseRetentionPolicy.NO_TTL
    database_retention_ttl: int | None = None
    allow_unset: bool = False
    explicit_timestamp: bool = False
    required: bool = False
    encrypted: bool = False
    description: str | None = None
    doc: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Astarte's output form: endpoint and type, then only non-default fields."""
        out: dict[str, Any] = {"endpoint": self.endpoint, "type": self.type.value}
        if self.reliability is not Reliability.UNRELIABLE:
            out["reliability"] = self.reliability.value
        if self.retention is not Retention.DISCARD:
            out["retention"] = self.retention.value
        if self.expiry:
            out["expiry"] = self.expiry
        if self.database_retention_policy is not DatabaseRetentionPolicy.NO_TTL:
            out["database_retention_policy"] = self.database_retention_policy.value
        if self.database_retention_ttl is not None:
            out["database_retention_ttl"] = self.database_retention_ttl
        for flag in ("allow_unset", "explicit_timestamp", "required", "encrypted"):
            if getattr(self, flag):
                out[flag] = True
        if self.description is not None:
            out["description"] = self.description
        if self.doc is not None:
            out["doc"] = self.doc
        return out


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    major: int
    minor: int
    type: InterfaceType
    ownership: Ownership
    aggregation: Aggregation
    mappings: tuple[Mapping, ...]
    description: str | None = None
    doc: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "interface_name": self.name,
            "version_major": self.major,
            "version_minor": self.minor,
            "type": self.type.value,
            "ownership": self.ownership.value,
        }
        if self.aggregation is Aggregation.OBJECT:
            out["aggregation"] = self.aggregation.value
        if self.description is not None:
            out["description"] = self.description
        if self.doc is not None:
            out["doc"] = self.doc
        out["mappings"] = [m.to_json() for m in self.mappings]
        return out


def interface_from_json(doc: dict[str, Any]) -> Interface:
    """Rebuilds an interface from its canonical `to_json` form.

    Trusts its input: use it only for documents this platform validated and stored itself.
    Untrusted documents go through `astraea.core.interface_parser.parse_interface`.
    """
    return Interface(
        name=doc["interface_name"],
        major=doc["version_major"],
        minor=doc["version_minor"],
        type=InterfaceType(doc["type"]),
        ownership=Ownership(doc["ownership"]),
        aggregation=Aggregation(doc.get("aggregation", "individual")),
        description=doc.get("description"),
        doc=doc.get("doc"),
        mappings=tuple(_mapping_from_json(m) for m in doc["mappings"]),
    )


def _mapping_from_json(doc: dict[str, Any]) -> Mapping:
    return Mapping(
        endpoint=doc["endpoint"],
        type=ValueType(doc["type"]),
        reliability=Reliability(doc.get("reliability", "unreliable")),
        retention=Retention(doc.get("retention", "discard")),
        expiry=doc.get("expiry", 0),
        database_retention_policy=DatabaseRetentionPolicy(
            doc.get("database_retention_policy", "no_ttl")
        ),
        database_retention_ttl=doc.get("database_retention_ttl"),
        allow_unset=doc.get("allow_unset", False),
        explicit_timestamp=doc.get("explicit_timestamp", False),
        required=doc.get("required", False),
        encrypted=doc.get("encrypted", False),
        description=doc.get("description"),
        doc=doc.get("doc"),
    )
