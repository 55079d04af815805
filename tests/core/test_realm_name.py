"""Realm name rules (validation.md §1)."""

from __future__ import annotations

import pytest

from astraea.core.realm_name import is_valid_realm_name


@pytest.mark.parametrize("name", ["a", "test", "realm1", "x" + "0" * 47, "systems", "astarte2"])
def test_valid_realm_names(name: str) -> None:
    assert is_valid_realm_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1realm",
        "Realm",
        "my_realm",
        "my-realm",
        "x" * 49,
        "astarte",
        "system",
        "system_x",
        "realm\n",
        "réalm",
        " realm",
    ],
)
def test_invalid_realm_names(name: str) -> None:
    assert not is_valid_realm_name(name)
