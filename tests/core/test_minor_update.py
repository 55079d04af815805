"""Minor update rules (validation.md §5) with the 409 details of rest-api.md §2."""

from __future__ import annotations

from typing import Any

import pytest

from astraea.core.interface import Interface
from astraea.core.interface_parser import OverlappingEndpointsError, parse_interface
from astraea.core.minor_update import MinorUpdateError, check_minor_update

BASE_MAPPINGS: list[dict[str, Any]] = [
    {"endpoint": "/%{sensor}/value", "type": "double", "reliability": "guaranteed"},
    {"endpoint": "/%{sensor}/unit", "type": "string", "description": "Unit."},
]


def interface(
    minor: int = 1, mappings: list[dict[str, Any]] | None = None, **fields: Any
) -> Interface:
    doc: dict[str, Any] = {
        "interface_name": "org.example.Sensors",
        "version_major": 0,
        "version_minor": minor,
        "type": "datastream",
        "ownership": "device",
        "mappings": BASE_MAPPINGS if mappings is None else mappings,
    }
    doc.update(fields)
    return parse_interface(doc)


def changed(index: int, **fields: Any) -> list[dict[str, Any]]:
    mappings = [dict(m) for m in BASE_MAPPINGS]
    mappings[index].update(fields)
    return mappings


def refusal(old: Interface, new: Interface) -> str:
    with pytest.raises(MinorUpdateError) as raised:
        check_minor_update(old, new)
    assert str(raised.value) == raised.value.detail
    return raised.value.detail


@pytest.mark.parametrize(
    "new",
    [
        interface(minor=2),
        interface(minor=10, description="Now documented.", doc="Docs."),
        interface(minor=2, mappings=[*BASE_MAPPINGS, {"endpoint": "/%{s}/x", "type": "integer"}]),
        interface(minor=2, mappings=[BASE_MAPPINGS[1], BASE_MAPPINGS[0]]),
        interface(minor=2, mappings=changed(0, doc="New doc", description="New description")),
        interface(minor=2, mappings=changed(1, description=None)),
        interface(minor=2, mappings=changed(0, explicit_timestamp=True)),
        interface(minor=2, mappings=changed(0, retention="stored", expiry=3600)),
    ],
)
def test_allowed_updates(new: Interface) -> None:
    check_minor_update(interface(minor=1), new)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "properties", "mappings": [{"endpoint": "/%{s}/value", "type": "double"}]},
        {"ownership": "server"},
        {"aggregation": "object", "mappings": changed(0, reliability="unreliable")},
    ],
)
def test_type_ownership_and_aggregation_are_fixed(fields: dict[str, Any]) -> None:
    old = interface(minor=1)
    assert refusal(old, interface(minor=2, **fields)) == "Invalid update"
    assert refusal(old, interface(minor=1, **fields)) == "Invalid update"


def test_minor_must_increase() -> None:
    assert refusal(interface(minor=3), interface(minor=3)) == (
        "Interface minor version was not increased"
    )
    assert refusal(interface(minor=3), interface(minor=2)) == "Interface downgrade not allowed"


@pytest.mark.parametrize(
    "mappings",
    [
        BASE_MAPPINGS[:1],
        [BASE_MAPPINGS[0], {"endpoint": "/%{sensor}/units", "type": "string"}],
        changed(1, endpoint="/%{sensor}/Unit"),
    ],
)
def test_existing_endpoints_must_stay(mappings: list[dict[str, Any]]) -> None:
    assert refusal(interface(minor=1), interface(minor=2, mappings=mappings)) == (
        "Interface update has missing endpoints"
    )


def test_placeholders_with_underscores_are_part_of_the_endpoint_id() -> None:
    old = interface(minor=1, mappings=[{"endpoint": "/%{sensor_id}/value", "type": "double"}])
    new = interface(minor=2, mappings=[{"endpoint": "/%{sensorId}/value", "type": "double"}])
    assert refusal(old, new) == "Interface update has missing endpoints"


@pytest.mark.parametrize(
    "mappings",
    [
        changed(0, type="integer"),
        changed(0, reliability="unique"),
        changed(0, reliability="unreliable"),
        changed(0, database_retention_policy="use_ttl", database_retention_ttl=60),
        changed(0, encrypted=True),
        changed(1, endpoint="/%{probe}/unit"),  # same endpoint id, different endpoint
    ],
)
def test_existing_mappings_keep_their_contract(mappings: list[dict[str, Any]]) -> None:
    assert refusal(interface(minor=1), interface(minor=2, mappings=mappings)) == (
        "Interface update contains incompatible endpoint changes"
    )


def test_allow_unset_is_fixed_on_properties() -> None:
    def properties(minor: int, allow_unset: bool) -> Interface:
        mapping = {"endpoint": "/p", "type": "integer", "allow_unset": allow_unset}
        return interface(minor=minor, type="properties", mappings=[mapping])

    check_minor_update(properties(1, False), properties(2, False))
    assert refusal(properties(1, False), properties(2, True)) == (
        "Interface update contains incompatible endpoint changes"
    )


def test_added_mappings_must_not_overlap() -> None:
    with pytest.raises(OverlappingEndpointsError):
        interface(minor=2, mappings=[*BASE_MAPPINGS, {"endpoint": "/s1/value", "type": "double"}])
