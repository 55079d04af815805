"""Endpoint tokenising, concrete path validation and resolution, checked against a brute force."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astraea.core.endpoints import (
    EndpointTree,
    InvalidPathError,
    endpoint_identity,
    endpoint_tokens,
    is_placeholder,
    object_key,
    path_tokens,
)
from astraea.core.interface import Mapping, ValueType
from astraea.core.interface_parser import parse_interface
from astraea.interfaces import ASTARTE_STANDARD

STANDARD = ASTARTE_STANDARD


def tree(*endpoints: str) -> EndpointTree:
    return EndpointTree(Mapping(endpoint=e, type=ValueType.DOUBLE) for e in endpoints)


def endpoints_of(mappings: list[Mapping]) -> list[str]:
    return [m.endpoint for m in mappings]


def test_endpoint_tokens_and_keys() -> None:
    assert endpoint_tokens("/%{sensor_id}/value") == ("%{sensor_id}", "value")
    assert endpoint_tokens("/a") == ("a",)
    assert is_placeholder("%{x}") and not is_placeholder("x")
    assert object_key(Mapping(endpoint="/%{id}/latitude", type=ValueType.DOUBLE)) == "latitude"
    assert object_key(Mapping(endpoint="/value", type=ValueType.DOUBLE)) == "value"


@pytest.mark.parametrize(
    ("endpoint", "identity"),
    [
        ("/a/b", "/a/b"),
        ("/%{id}/value", "//value"),
        ("/%{Id2}/%{x}", "//"),
        ("/%{sensor_id}/value", "/%{sensor_id}/value"),  # Astarte keeps placeholders with `_`
    ],
)
def test_endpoint_identity(endpoint: str, identity: str) -> None:
    assert endpoint_identity(endpoint) == identity


@pytest.mark.parametrize(
    ("path", "tokens"),
    [
        ("/", ()),
        ("/a", ("a",)),
        ("/sensor-1/value", ("sensor-1", "value")),
        ("/%{x}/ünïcode", ("%{x}", "ünïcode")),
        ("/a b/ /c", ("a b", " ", "c")),
    ],
)
def test_valid_paths(path: str, tokens: tuple[str, ...]) -> None:
    assert path_tokens(path) == tokens


@pytest.mark.parametrize(
    "path",
    ["", "a", "a/b", "//", "/a/", "/a//b", "//a", "/a+b", "/#", "/a/+", "/a\x00", "/\ud800"],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(InvalidPathError):
        path_tokens(path)
    with pytest.raises(InvalidPathError):
        tree("/a").resolve(path)


def test_resolve_exact_paths() -> None:
    endpoints = tree("/%{sensor}/value", "/config/%{key}/enabled", "/config/name", "/x")
    assert endpoints.resolve("/s1/value") == endpoints.mappings[0]
    assert endpoints.resolve("/config/value") == endpoints.mappings[0]
    assert endpoints.resolve("/config/name") == endpoints.mappings[2]
    assert endpoints.resolve("/config/k/enabled") == endpoints.mappings[1]
    assert endpoints.resolve("/x") == endpoints.mappings[3]
    assert endpoints.resolve("/") is None
    assert endpoints.resolve("/s1") is None
    assert endpoints.resolve("/config/k") is None
    assert endpoints.resolve("/s1/other") is None
    assert endpoints.resolve("/a/b/c/d") is None


def test_resolve_partial_paths() -> None:
    endpoints = tree("/%{sensor}/value", "/%{sensor}/unit", "/global/name")
    every = ["/%{sensor}/value", "/%{sensor}/unit", "/global/name"]
    assert endpoints_of(endpoints.resolve_partial("/")) == every
    assert endpoints_of(endpoints.resolve_partial("/s1")) == every[:2]
    assert endpoints_of(endpoints.resolve_partial("/global")) == every
    assert endpoints_of(endpoints.resolve_partial("/s1/unit")) == ["/%{sensor}/unit"]
    assert endpoints.resolve_partial("/s1/unit/more") == []
    assert endpoints.resolve_partial("/s1/nothing") == []


def test_resolve_object_paths() -> None:
    doc = json.loads(
        (STANDARD / "org.astarte-platform.genericsensors.Geolocation.json").read_text()
    )
    geolocation = parse_interface(doc)
    endpoints = EndpointTree(geolocation.mappings)
    assert endpoints.object_prefix_depth == 1
    resolved = endpoints.resolve_object("/gps")
    assert resolved is not None
    assert set(resolved) == {m.endpoint.rsplit("/", 1)[1] for m in geolocation.mappings}
    assert all(object_key(mapping) == key for key, mapping in resolved.items())
    assert endpoints.resolve_object("/") is None
    assert endpoints.resolve_object("/gps/latitude") is None


def test_resolve_object_at_root_for_depth_one_objects() -> None:
    endpoints = tree("/value", "/otherValue")
    assert endpoints.object_prefix_depth == 0
    assert list(endpoints.resolve_object("/") or {}) == ["value", "otherValue"]
    assert endpoints.resolve_object("/value") is None


def test_object_prefix_depth_needs_a_single_depth() -> None:
    assert tree("/a/b/c", "/a/b/d").object_prefix_depth == 2
    assert tree("/a", "/b/c").object_prefix_depth is None
    assert EndpointTree([]).object_prefix_depth is None
    assert EndpointTree([]).resolve("/a") is None
    assert EndpointTree([]).resolve_partial("/") == []


@pytest.mark.parametrize(
    ("endpoints", "overlap"),
    [
        (["/a/b", "/a/c"], None),
        (["/a", "/a/b"], ("/a", "/a/b")),
        (["/a/b", "/a"], ("/a/b", "/a")),
        (["/%{x}/v", "/a/v"], ("/%{x}/v", "/a/v")),
        (["/x", "/y", "/x"], ("/x", "/x")),
    ],
)
def test_find_overlap(endpoints: list[str], overlap: tuple[str, str] | None) -> None:
    found = tree(*endpoints).find_overlap()
    assert (None if found is None else (found[0].endpoint, found[1].endpoint)) == overlap


def test_large_interfaces_stay_fast() -> None:
    endpoints = [f"/{'%{p}/' * 30}x{i}/{'%{q}/' * 30}leaf" for i in range(1024)]
    big = tree(*endpoints)
    assert big.find_overlap() is None
    path = "/" + "/".join(["v"] * 30 + ["x1000"] + ["w"] * 30 + ["leaf"])
    assert big.resolve(path) == big.mappings[1000]


# --- properties against a brute-force reference ----------------------------------------------

TOKENS = st.sampled_from(["a", "b", "%{p}", "%{q}"])
ENDPOINTS = st.lists(TOKENS, min_size=1, max_size=4).map(lambda t: "/" + "/".join(t))
PATHS = st.lists(st.sampled_from(["a", "b", "c"]), max_size=5).map(lambda t: "/" + "/".join(t))


def compatible(template: tuple[str, ...], concrete: tuple[str, ...]) -> bool:
    return all(t == c or is_placeholder(t) for t, c in zip(template, concrete, strict=False))


def overlapping(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    return all(
        a == b or is_placeholder(a) or is_placeholder(b)
        for a, b in zip(first, second, strict=False)
    )


@given(st.lists(ENDPOINTS, min_size=1, max_size=6), PATHS)
def test_resolution_agrees_with_brute_force(endpoints: list[str], path: str) -> None:
    resolver = tree(*endpoints)
    concrete = path_tokens(path)
    templates = [endpoint_tokens(e) for e in endpoints]
    exact = [i for i, t in enumerate(templates) if len(t) == len(concrete)]
    exact = [i for i in exact if compatible(templates[i], concrete)]
    expected = resolver.mappings[exact[0]] if len(exact) == 1 else None
    assert resolver.resolve(path) == expected
    below = [i for i, t in enumerate(templates) if len(t) >= len(concrete)]
    below = [i for i in below if compatible(templates[i], concrete)]
    assert resolver.resolve_partial(path) == [resolver.mappings[i] for i in below]
    objects = [i for i, t in enumerate(templates) if len(t) == len(concrete) + 1]
    objects = [i for i in objects if compatible(templates[i], concrete)]
    expected_object = {templates[i][-1]: resolver.mappings[i] for i in objects}
    assert resolver.resolve_object(path) == (expected_object or None)


@given(st.lists(ENDPOINTS, min_size=1, max_size=6))
def test_overlap_agrees_with_brute_force(endpoints: list[str]) -> None:
    templates = [endpoint_tokens(e) for e in endpoints]
    expected = any(
        overlapping(templates[i], templates[j])
        for i in range(len(templates))
        for j in range(i + 1, len(templates))
    )
    found = tree(*endpoints).find_overlap()
    assert (found is not None) == expected
    if found is not None:
        assert overlapping(endpoint_tokens(found[0].endpoint), endpoint_tokens(found[1].endpoint))


@given(st.text())
def test_arbitrary_paths_only_raise_invalid_path(path: str) -> None:
    resolver = tree("/%{a}/b", "/c/d", "/%{e}/%{f}/g")
    for lookup in (resolver.resolve, resolver.resolve_partial, resolver.resolve_object):
        with contextlib.suppress(InvalidPathError):
            lookup(path)
