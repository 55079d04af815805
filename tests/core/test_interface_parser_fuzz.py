"""Property tests: the parser never fails outside its documented error, and what it accepts
survives its own canonical JSON form."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from astraea.core.interface import interface_from_json
from astraea.core.interface_parser import InterfaceValidationError, parse_interface

KEYS = [
    "interface_name",
    "version_major",
    "version_minor",
    "type",
    "ownership",
    "aggregation",
    "aggregate",
    "quality",
    "description",
    "doc",
    "mappings",
    "endpoint",
    "path",
    "reliability",
    "retention",
    "expiry",
    "database_retention_policy",
    "database_retention_ttl",
    "allow_unset",
    "explicit_timestamp",
    "required",
    "encrypted",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(
        [
            *("org.a.B", "/a", "/%{x}/y", "datastream", "properties", "device", "server"),
            *("object", "double", "use_ttl", "stored", "guaranteed", "producer"),
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=6)
    ),
    max_leaves=25,
)


@given(JSON)
def test_arbitrary_documents_only_raise_validation_errors(doc: object) -> None:
    try:
        parsed = parse_interface(doc)
    except InterfaceValidationError as error:
        assert error.errors
        return
    assert parse_interface(parsed.to_json()) == parsed


TYPES = ["double", "integer", "longinteger", "string", "binaryblob", "datetimearray"]
ENDPOINT_TOKENS = st.sampled_from(["a", "b", "c", "%{p}", "%{q}"])


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    interface_type = draw(st.sampled_from(["datastream", "properties"]))
    is_object = interface_type == "datastream" and draw(st.booleans())
    mapping_count = draw(st.integers(1, 4))
    if is_object:
        prefix = draw(st.lists(ENDPOINT_TOKENS, max_size=2))
        endpoints = ["/".join(["", *prefix, f"k{i}"]) for i in range(mapping_count)]
    else:
        endpoints = [f"/m{i}" + draw(st.sampled_from(["", "/%{p}", "/a/b"])) for i in range(4)]
        endpoints = endpoints[:mapping_count]
    shared: dict[str, Any] = {
        "reliability": draw(st.sampled_from(["unreliable", "guaranteed", "unique"]))
    }
    if draw(st.booleans()) and interface_type == "datastream":
        shared.update(database_retention_policy="use_ttl", database_retention_ttl=3600)
    mappings = []
    for endpoint in endpoints:
        mapping: dict[str, Any] = {"endpoint": endpoint, "type": draw(st.sampled_from(TYPES))}
        if interface_type == "datastream":
            mapping.update(shared)
        else:
            mapping["allow_unset"] = draw(st.booleans())
        if draw(st.booleans()):
            mapping["description"] = draw(st.text(max_size=5))
        mappings.append(mapping)
    return {
        "interface_name": "org.example.Generated",
        "version_major": draw(st.integers(0, 3)),
        "version_minor": draw(st.integers(1, 3)),
        "type": interface_type,
        "ownership": draw(st.sampled_from(["device", "server"])),
        "aggregation": "object" if is_object else "individual",
        "mappings": mappings,
    }


@given(valid_documents())
def test_valid_documents_round_trip(doc: dict[str, Any]) -> None:
    parsed = parse_interface(doc)
    assert interface_from_json(parsed.to_json()) == parsed
    assert parse_interface(parsed.to_json()) == parsed
