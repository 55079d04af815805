"""Every interface rule of validation.md §3-§4 and the documentation, valid and invalid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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
    interface_from_json,
)
from astraea.core.interface_parser import (
    InterfaceValidationError,
    OverlappingEndpointsError,
    interface_name_key,
    parse_interface,
)
from astraea.interfaces import ASTARTE_STANDARD, EDGEHOG

REFERENCE_INTERFACES = sorted([*ASTARTE_STANDARD.glob("*.json"), *EDGEHOG.glob("*.json")])
ABSENT = object()


def interface(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "interface_name": "org.example.Sensors",
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [{"endpoint": "/%{sensor}/value", "type": "double"}],
    }
    doc.update(fields)
    return {key: value for key, value in doc.items() if value is not ABSENT}


def mapping(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"endpoint": "/value", "type": "double"}
    doc.update(fields)
    return {key: value for key, value in doc.items() if value is not ABSENT}


def datastream(**fields: Any) -> dict[str, Any]:
    return interface(type="datastream", mappings=[mapping(**fields)])


def properties(**fields: Any) -> dict[str, Any]:
    return interface(type="properties", mappings=[mapping(**fields)])


def obj(*mappings: dict[str, Any]) -> dict[str, Any]:
    return interface(aggregation="object", mappings=list(mappings))


def errors_of(doc: object) -> dict[str, object]:
    with pytest.raises(InterfaceValidationError) as raised:
        parse_interface(doc)
    assert type(raised.value) is InterfaceValidationError
    return raised.value.errors


def single_mapping_errors(doc: dict[str, Any]) -> object:
    errors = errors_of(doc)
    assert list(errors) == ["mappings"]
    mappings = errors["mappings"]
    assert isinstance(mappings, list) and len(mappings) == 1
    return mappings[0]


# --- reference interfaces -------------------------------------------------------------------


@pytest.mark.parametrize("path", REFERENCE_INTERFACES, ids=lambda p: p.stem)
def test_reference_interfaces_parse_and_round_trip(path: Path) -> None:
    doc = json.loads(path.read_text())
    parsed = parse_interface(doc)
    assert parsed.name == doc["interface_name"]
    assert len(parsed.mappings) == len(doc["mappings"])
    assert interface_from_json(parsed.to_json()) == parsed
    assert parse_interface(parsed.to_json()) == parsed


def test_reference_interfaces_are_all_found() -> None:
    assert len(REFERENCE_INTERFACES) >= 6 + 50


def test_full_document_is_parsed_into_the_model() -> None:
    doc = interface(
        interface_name="org.astarte-platform.Values",
        version_major=0,
        version_minor=2,
        type="datastream",
        ownership="server",
        aggregation="object",
        description="Some values.",
        doc="Long text.",
        mappings=[
            mapping(
                endpoint="/%{id}/temp",
                type="doublearray",
                reliability="guaranteed",
                retention="stored",
                expiry=60,
                database_retention_policy="use_ttl",
                database_retention_ttl=3600,
                explicit_timestamp=True,
                required=True,
                encrypted=True,
                description="Temperature.",
                doc="Celsius.",
            )
        ],
    )
    assert parse_interface(doc) == Interface(
        name="org.astarte-platform.Values",
        major=0,
        minor=2,
        type=InterfaceType.DATASTREAM,
        ownership=Ownership.SERVER,
        aggregation=Aggregation.OBJECT,
        description="Some values.",
        doc="Long text.",
        mappings=(
            Mapping(
                endpoint="/%{id}/temp",
                type=ValueType.DOUBLEARRAY,
                reliability=Reliability.GUARANTEED,
                retention=Retention.STORED,
                expiry=60,
                database_retention_policy=DatabaseRetentionPolicy.USE_TTL,
                database_retention_ttl=3600,
                explicit_timestamp=True,
                required=True,
                encrypted=True,
                description="Temperature.",
                doc="Celsius.",
            ),
        ),
    )


def test_defaults_and_unknown_keys() -> None:
    parsed = parse_interface(interface(unknown="ignored", mappings=[mapping(extra=[1, 2])]))
    assert parsed.aggregation is Aggregation.INDIVIDUAL
    assert parsed.description is None and parsed.doc is None
    assert parsed.mappings == (Mapping(endpoint="/value", type=ValueType.DOUBLE),)


# --- document shape ------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [None, 5, "text", [interface()], True])
def test_document_must_be_an_object(doc: object) -> None:
    assert errors_of(doc) == {"data": ["is invalid"]}


def test_empty_document_reports_every_required_field() -> None:
    blank = ["can't be blank"]
    assert errors_of({}) == {
        "interface_name": blank,
        "version_major": blank,
        "version_minor": blank,
        "type": blank,
        "ownership": blank,
        "mappings": blank,
    }


# --- interface_name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "org.astarte-platform.Values",
        "com.test.MyInterfaceName",
        "a.B",
        "org.astarte-platform.conventions-satisfied.ValidInterfaceName",
        "io.edgehog.devicemanager.apps.stats.ContainerBlkio",
        "a1.0b-c.D2",
        "org.example." + "N" * (128 - len("org.example.")),
    ],
)
def test_valid_interface_names(name: str) -> None:
    assert parse_interface(interface(interface_name=name)).name == name


@pytest.mark.parametrize(
    "name",
    [
        "Values",  # Astraea decision: a full reverse domain name is required
        "org.astarte-platform.Val-ues",
        "org-x.Values",
        "1org.Values",
        "org..Values",
        "org.Values.",
        ".org.Values",
        "org.-x.Values",
        "org.x_y.Values",
        "org.é.Values",
        "org.Values\n",
        "org Values.x",
    ],
)
def test_invalid_interface_name_format(name: str) -> None:
    assert errors_of(interface(interface_name=name)) == {"interface_name": ["has invalid format"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (ABSENT, ["can't be blank"]),
        (None, ["can't be blank"]),
        ("", ["can't be blank"]),
        ("   ", ["can't be blank"]),
        (5, ["is invalid"]),
        (["org.a.B"], ["is invalid"]),
        ("org.example." + "N" * 117, ["should be at most 128 character(s)"]),
        ("astarte", ["has invalid format", "is reserved"]),
        ("control", ["has invalid format", "is reserved"]),
        ("device", ["has invalid format", "is reserved"]),
    ],
)
def test_interface_name_errors(name: object, expected: list[str]) -> None:
    assert errors_of(interface(interface_name=name)) == {"interface_name": expected}


def test_interface_name_key_ignores_case_and_hyphens() -> None:
    assert interface_name_key("org.Astarte-Platform.My-Values") == "org.astarteplatform.myvalues"
    assert interface_name_key("org.astarte-platform.MyValues") == interface_name_key(
        "org.astarteplatform.Myvalues"
    )


# --- versions ------------------------------------------------------------------------------


@pytest.mark.parametrize(("major", "minor"), [(0, 1), (1, 0), (2, 7), (2**40, 0)])
def test_valid_versions(major: int, minor: int) -> None:
    parsed = parse_interface(interface(version_major=major, version_minor=minor))
    assert (parsed.major, parsed.minor) == (major, minor)


@pytest.mark.parametrize("field", ["version_major", "version_minor"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ABSENT, "can't be blank"),
        (None, "can't be blank"),
        ("1", "is invalid"),
        (1.0, "is invalid"),
        (True, "is invalid"),
        ([1], "is invalid"),
        (-1, "must be greater than or equal to 0"),
    ],
)
def test_version_errors(field: str, value: object, expected: str) -> None:
    assert errors_of(interface(**{field: value})) == {field: [expected]}


def test_version_zero_zero_is_rejected() -> None:
    assert errors_of(interface(version_major=0, version_minor=0)) == {
        "version_minor": ["must be > 0 if major_version is 0"]
    }


# --- type, ownership, aggregation ----------------------------------------------------------


@pytest.mark.parametrize("value", ["datastream", "properties"])
def test_valid_types(value: str) -> None:
    assert parse_interface(interface(type=value)).type.value == value


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("type", ABSENT, "can't be blank"),
        ("type", "", "can't be blank"),
        ("type", "Datastream", "is invalid"),
        ("type", "property", "is invalid"),
        ("type", 1, "is invalid"),
        ("ownership", ABSENT, "can't be blank"),
        ("ownership", "both", "is invalid"),
        ("ownership", True, "is invalid"),
        ("aggregation", "objects", "is invalid"),
        ("aggregation", 1, "is invalid"),
    ],
)
def test_enumerated_field_errors(field: str, value: object, expected: str) -> None:
    assert errors_of(interface(**{field: value})) == {field: [expected]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"ownership": "device"}, Ownership.DEVICE),
        ({"ownership": "server"}, Ownership.SERVER),
        ({"ownership": "producer"}, Ownership.DEVICE),
        ({"ownership": "consumer"}, Ownership.SERVER),
        ({"ownership": ABSENT, "quality": "producer"}, Ownership.DEVICE),
        ({"ownership": ABSENT, "quality": "consumer"}, Ownership.SERVER),
        ({"ownership": ABSENT, "quality": "server"}, Ownership.SERVER),
        ({"ownership": "device", "quality": "consumer"}, Ownership.DEVICE),
    ],
)
def test_ownership_and_legacy_quality(fields: dict[str, Any], expected: Ownership) -> None:
    assert parse_interface(interface(**fields)).ownership is expected


def test_invalid_legacy_quality_is_reported_as_ownership() -> None:
    assert errors_of(interface(ownership=ABSENT, quality="nobody")) == {"ownership": ["is invalid"]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, Aggregation.INDIVIDUAL),
        ({"aggregation": None}, Aggregation.INDIVIDUAL),
        ({"aggregation": "individual"}, Aggregation.INDIVIDUAL),
        ({"aggregation": "object"}, Aggregation.OBJECT),
        ({"aggregate": True}, Aggregation.OBJECT),
        ({"aggregate": False}, Aggregation.INDIVIDUAL),
        ({"aggregation": "individual", "aggregate": True}, Aggregation.INDIVIDUAL),
    ],
)
def test_aggregation_and_legacy_aggregate(fields: dict[str, Any], expected: Aggregation) -> None:
    assert parse_interface(interface(**fields)).aggregation is expected


def test_properties_cannot_be_object_aggregated() -> None:
    assert errors_of(interface(type="properties", aggregation="object")) == {
        "aggregation": ["must be individual for properties interfaces"]
    }
    assert parse_interface(interface(type="properties", aggregation="individual"))


# --- description and doc -------------------------------------------------------------------


@pytest.mark.parametrize(("field", "limit"), [("description", 1000), ("doc", 100_000)])
def test_description_and_doc_lengths(field: str, limit: int) -> None:
    assert getattr(parse_interface(interface(**{field: "d" * limit})), field) == "d" * limit
    assert errors_of(interface(**{field: "d" * (limit + 1)})) == {
        field: [f"should be at most {limit} character(s)"]
    }
    assert errors_of(interface(**{field: 42})) == {field: ["is invalid"]}
    assert getattr(parse_interface(interface(**{field: ""})), field) is None


# --- mappings list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mappings", "expected"),
    [
        (ABSENT, ["can't be blank"]),
        (None, ["can't be blank"]),
        ({"endpoint": "/a", "type": "double"}, ["is invalid"]),
        ("mappings", ["is invalid"]),
        ([mapping(), "not an object"], ["is invalid"]),
        ([], ["should have at least 1 item(s)"]),
        (
            [mapping(endpoint=f"/v{i}") for i in range(1025)],
            ["should have at most 1024 item(s)"],
        ),
    ],
)
def test_mappings_list_errors(mappings: object, expected: list[str]) -> None:
    assert errors_of(interface(mappings=mappings)) == {"mappings": expected}


def test_up_to_1024_mappings() -> None:
    parsed = parse_interface(interface(mappings=[mapping(endpoint=f"/v{i}") for i in range(1024)]))
    assert len(parsed.mappings) == 1024


def test_invalid_mappings_are_reported_one_map_each() -> None:
    doc = interface(
        interface_name="Values",
        mappings=[mapping(), mapping(endpoint="no/slash"), mapping(), mapping(type="float")],
    )
    assert errors_of(doc) == {
        "interface_name": ["has invalid format"],
        "mappings": [{}, {"endpoint": ["has invalid format"]}, {}, {"type": ["is invalid"]}],
    }


def test_mapping_errors_hide_mapping_set_problems() -> None:
    doc = interface(mappings=[mapping(), mapping(), mapping(type=ABSENT)])
    assert errors_of(doc) == {"mappings": [{}, {}, {"type": ["can't be blank"]}]}


# --- endpoint ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "/a",
        "/_",
        "/_a/b1",
        "/%{a_b}/c",
        "/%{_x}/%{y2}",
        "/A/B/%{CamelCase}",
        "/a" * 64,
        "/" + "a" * 255,
    ],
)
def test_valid_endpoints(endpoint: str) -> None:
    assert parse_interface(datastream(endpoint=endpoint)).mappings[0].endpoint == endpoint


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (ABSENT, ["can't be blank"]),
        ("", ["can't be blank"]),
        (7, ["is invalid"]),
        ("/", ["should be at least 2 character(s)", "has invalid format"]),
        ("/" + "a" * 256, ["should be at most 256 character(s)"]),
        ("a/b", ["has invalid format"]),
        ("/a/", ["has invalid format"]),
        ("/a//b", ["has invalid format"]),
        ("/1a", ["has invalid format"]),
        ("/%{1a}", ["has invalid format"]),
        ("/%{a", ["has invalid format"]),
        ("/%{}", ["has invalid format"]),
        ("/a%{b}", ["has invalid format"]),
        ("/a b", ["has invalid format"]),
        ("/a-b", ["has invalid format"]),
        ("/a\n", ["has invalid format"]),
        ("/a" * 65, ["has invalid format"]),
    ],
)
def test_endpoint_errors(endpoint: object, expected: list[str]) -> None:
    assert single_mapping_errors(datastream(endpoint=endpoint)) == {"endpoint": expected}


def test_legacy_path_key_stands_for_endpoint() -> None:
    parsed = parse_interface(datastream(endpoint=ABSENT, path="/legacy"))
    assert parsed.mappings[0].endpoint == "/legacy"
    assert parse_interface(datastream(endpoint="/new", path="/old")).mappings[0].endpoint == "/new"
    assert single_mapping_errors(datastream(endpoint=ABSENT, path="no/slash")) == {
        "endpoint": ["has invalid format"]
    }


# --- mapping type --------------------------------------------------------------------------


@pytest.mark.parametrize("value_type", [t.value for t in ValueType])
def test_every_value_type_is_accepted(value_type: str) -> None:
    assert parse_interface(datastream(type=value_type)).mappings[0].type.value == value_type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ABSENT, "can't be blank"),
        ("", "can't be blank"),
        ("float", "is invalid"),
        ("Integer", "is invalid"),
        ("array", "is invalid"),
        (3, "is invalid"),
    ],
)
def test_mapping_type_errors(value: object, expected: str) -> None:
    assert single_mapping_errors(datastream(type=value)) == {"type": [expected]}


# --- datastream-only, properties-only and object-only fields -------------------------------

DATASTREAM_ONLY_VALUES = [
    ("reliability", "guaranteed"),
    ("reliability", "unique"),
    ("retention", "volatile"),
    ("retention", "stored"),
    ("expiry", 10),
    ("explicit_timestamp", True),
]
DATASTREAM_DEFAULTS = [
    ("reliability", "unreliable"),
    ("retention", "discard"),
    ("expiry", 0),
    ("explicit_timestamp", False),
    ("database_retention_policy", "no_ttl"),
]


@pytest.mark.parametrize(("field", "value"), DATASTREAM_ONLY_VALUES + DATASTREAM_DEFAULTS)
def test_datastream_fields_are_accepted_on_datastreams(field: str, value: object) -> None:
    parsed = parse_interface(datastream(**{field: value}))
    rendered = getattr(parsed.mappings[0], field)
    assert getattr(rendered, "value", rendered) == value


@pytest.mark.parametrize(("field", "value"), DATASTREAM_ONLY_VALUES)
def test_datastream_fields_must_be_blank_on_properties(field: str, value: object) -> None:
    assert single_mapping_errors(properties(**{field: value})) == {field: ["must be blank"]}


@pytest.mark.parametrize(("field", "value"), DATASTREAM_DEFAULTS)
def test_datastream_fields_at_default_pass_on_properties(field: str, value: object) -> None:
    assert parse_interface(properties(**{field: value}))


def test_retention_policy_must_be_blank_on_properties() -> None:
    assert single_mapping_errors(
        properties(database_retention_policy="use_ttl", database_retention_ttl=60)
    ) == {
        "database_retention_policy": ["must be blank"],
        "database_retention_ttl": ["must be blank"],
    }
    assert single_mapping_errors(properties(database_retention_ttl=60)) == {
        "database_retention_ttl": ["must be blank"]
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reliability", "always"),
        ("reliability", 1),
        ("retention", "forever"),
        ("database_retention_policy", "ttl"),
        ("expiry", "10"),
        ("expiry", 1.5),
        ("expiry", True),
        ("explicit_timestamp", "true"),
        ("explicit_timestamp", 1),
        ("allow_unset", "yes"),
        ("required", 0),
        ("encrypted", "false"),
        ("database_retention_ttl", "60"),
        ("description", ["x"]),
        ("doc", {"x": 1}),
    ],
)
def test_mapping_field_type_errors(field: str, value: object) -> None:
    assert single_mapping_errors(datastream(**{field: value})) == {field: ["is invalid"]}


def test_expiry_must_not_be_negative() -> None:
    assert single_mapping_errors(datastream(expiry=-1)) == {
        "expiry": ["must be greater than or equal to 0"]
    }


@pytest.mark.parametrize("value", [True, False])
def test_allow_unset_is_accepted_on_properties(value: bool) -> None:
    assert parse_interface(properties(allow_unset=value)).mappings[0].allow_unset is value


def test_allow_unset_must_be_blank_on_datastreams() -> None:
    assert single_mapping_errors(datastream(allow_unset=True)) == {"allow_unset": ["must be blank"]}
    assert parse_interface(datastream(allow_unset=False))


def test_required_only_on_object_aggregates() -> None:
    parsed = parse_interface(obj(mapping(endpoint="/o/a", required=True), mapping(endpoint="/o/b")))
    assert [m.required for m in parsed.mappings] == [True, False]
    assert single_mapping_errors(datastream(required=True)) == {"required": ["must be blank"]}
    assert single_mapping_errors(properties(required=True)) == {"required": ["must be blank"]}
    assert parse_interface(datastream(required=False))


@pytest.mark.parametrize("value", [True, False])
def test_encrypted_is_accepted_everywhere(value: bool) -> None:
    assert parse_interface(datastream(encrypted=value)).mappings[0].encrypted is value
    assert parse_interface(properties(encrypted=value)).mappings[0].encrypted is value


@pytest.mark.parametrize(("field", "limit"), [("description", 1000), ("doc", 100_000)])
def test_mapping_description_and_doc_lengths(field: str, limit: int) -> None:
    assert parse_interface(datastream(**{field: "d" * limit}))
    assert single_mapping_errors(datastream(**{field: "d" * (limit + 1)})) == {
        field: [f"should be at most {limit} character(s)"]
    }


# --- database retention --------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [60, 3600, 630_719_999])
def test_valid_retention_ttl(ttl: int) -> None:
    parsed = parse_interface(
        datastream(database_retention_policy="use_ttl", database_retention_ttl=ttl)
    )
    assert parsed.mappings[0].database_retention_ttl == ttl


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"database_retention_policy": "use_ttl"},
            {"database_retention_ttl": ["can't be blank"]},
        ),
        (
            {"database_retention_policy": "use_ttl", "database_retention_ttl": None},
            {"database_retention_ttl": ["can't be blank"]},
        ),
        (
            {"database_retention_policy": "use_ttl", "database_retention_ttl": 59},
            {"database_retention_ttl": ["must be greater than or equal to 60"]},
        ),
        (
            {"database_retention_policy": "use_ttl", "database_retention_ttl": 630_720_000},
            {"database_retention_ttl": ["must be less than 630720000"]},
        ),
        ({"database_retention_ttl": 3600}, {"database_retention_ttl": ["must be blank"]}),
        (
            {"database_retention_policy": "no_ttl", "database_retention_ttl": 3600},
            {"database_retention_ttl": ["must be blank"]},
        ),
    ],
)
def test_retention_ttl_errors(fields: dict[str, Any], expected: dict[str, list[str]]) -> None:
    assert single_mapping_errors(datastream(**fields)) == expected


# --- mapping set rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoints",
    [
        ["/a/b", "/A/b"],
        ["/value", "/value"],
        ["/%{x}/value", "/%{y}/value"],
        ["/%{x}/Value", "/%{y}/value"],
    ],
)
def test_conflicting_endpoints(endpoints: list[str]) -> None:
    doc = interface(mappings=[mapping(endpoint=e) for e in endpoints])
    assert errors_of(doc) == {"mappings": ["contain conflicting endpoints"]}


@pytest.mark.parametrize(
    "endpoints",
    [
        ["/%{itemIndex}/value", "/myPath/value"],
        ["/some/thing", "/some/%{param}/value"],
        ["/a", "/a/b"],
        ["/a/%{x}", "/a/b"],
        ["/%{a}/x/%{c}", "/b/%{d}/y/z"],
        ["/%{a}/x", "/b/%{c}"],
        ["/%{x}/a", "/c/%{y}/d"],  # /c/a is a prefix of /c/a/d
        ["/one", "/two", "/three/%{x}", "/%{y}/four"],
    ],
)
def test_overlapping_endpoints(endpoints: list[str]) -> None:
    doc = interface(mappings=[mapping(endpoint=e) for e in endpoints])
    with pytest.raises(OverlappingEndpointsError) as raised:
        parse_interface(doc)
    assert raised.value.errors == {"detail": "Overlapping endpoints in interface mappings"}
    assert set(raised.value.endpoints) <= set(endpoints)


@pytest.mark.parametrize(
    "endpoints",
    [
        ["/a/b", "/a/c"],
        ["/%{x}/a", "/b/c"],
        ["/a/%{x}/b", "/a/c/d"],
        ["/%{x}/a", "/%{x}/b", "/c/d/%{y}"],
        ["/a", "/b", "/c/d"],
    ],
)
def test_non_overlapping_endpoints(endpoints: list[str]) -> None:
    parsed = parse_interface(interface(mappings=[mapping(endpoint=e) for e in endpoints]))
    assert [m.endpoint for m in parsed.mappings] == endpoints


def test_changeset_errors_win_over_overlaps() -> None:
    doc = interface(version_major=-1, mappings=[mapping(endpoint="/a"), mapping(endpoint="/a/b")])
    assert errors_of(doc) == {"version_major": ["must be greater than or equal to 0"]}


@pytest.mark.parametrize(
    "endpoints",
    [
        ["/%{itemIndex}/value", "/%{itemIndex}/otherValue"],
        ["/objects/value", "/objects/otherValue"],
        ["/value", "/otherValue"],  # depth 1: deprecated but kept for retrocompatibility
        ["/a/%{b}/c/x", "/a/%{b}/c/y"],
        ["/single/value"],
    ],
)
def test_valid_object_endpoint_layouts(endpoints: list[str]) -> None:
    parsed = parse_interface(obj(*[mapping(endpoint=e) for e in endpoints]))
    assert parsed.aggregation is Aggregation.OBJECT


@pytest.mark.parametrize(
    "endpoints",
    [
        ["/a/x", "/b/y"],
        ["/a/x", "/a/b/y"],
        ["/%{a}/x", "/%{b}/y"],
        ["/%{a}/x", "/a/y"],
        ["/x", "/a/y"],
    ],
)
def test_object_endpoints_must_share_their_prefix(endpoints: list[str]) -> None:
    assert errors_of(obj(*[mapping(endpoint=e) for e in endpoints])) == {
        "mappings": ["must have the same prefix in endpoints"]
    }


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("reliability", "guaranteed", "unique"),
        ("retention", "discard", "stored"),
        ("expiry", 0, 10),
        ("explicit_timestamp", True, False),
        ("database_retention_policy", "use_ttl", "no_ttl"),
    ],
)
def test_object_mappings_must_share_attributes(field: str, first: object, second: object) -> None:
    def one(endpoint: str, value: object) -> dict[str, Any]:
        fields: dict[str, Any] = {field: value}
        if value == "use_ttl":
            fields["database_retention_ttl"] = 60
        return mapping(endpoint=endpoint, **fields)

    assert errors_of(obj(one("/o/a", first), one("/o/b", second))) == {
        "mappings": ["contain conflicting attributes"]
    }
    assert parse_interface(obj(one("/o/a", first), one("/o/b", first)))


def test_object_mappings_must_share_retention_ttl() -> None:
    ttl = {"database_retention_policy": "use_ttl"}
    doc = obj(
        mapping(endpoint="/o/a", database_retention_ttl=60, **ttl),
        mapping(endpoint="/o/b", database_retention_ttl=61, **ttl),
    )
    assert errors_of(doc) == {"mappings": ["contain conflicting attributes"]}


def test_object_mappings_may_differ_in_type_docs_and_required() -> None:
    parsed = parse_interface(
        obj(
            mapping(endpoint="/o/a", type="string", description="A", doc="a", required=True),
            mapping(endpoint="/o/b", type="integer", encrypted=True),
        )
    )
    assert len(parsed.mappings) == 2


def test_object_problems_are_all_reported() -> None:
    doc = obj(mapping(endpoint="/a/x", reliability="unique"), mapping(endpoint="/b/X"))
    assert errors_of(doc) == {
        "mappings": ["contain conflicting attributes", "must have the same prefix in endpoints"]
    }
