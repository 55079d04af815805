"""Realm Management API over real HTTP: interfaces and realm configuration."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from tests.conftest import KeyPair

from astraea.interfaces import ASTARTE_STANDARD

STANDARD = ASTARTE_STANDARD


def _interface(name: str = "org.example.Sensors", major: int = 0, minor: int = 1) -> dict[str, Any]:
    return {
        "interface_name": name,
        "version_major": major,
        "version_minor": minor,
        "type": "datastream",
        "ownership": "device",
        "mappings": [
            {"endpoint": "/%{sensor}/value", "type": "double", "reliability": "guaranteed"}
        ],
    }


@pytest.fixture
def rm(realm: str, realm_keys: KeyPair) -> tuple[str, dict[str, str]]:
    return f"/realmmanagement/v1/{realm}", realm_keys.headers("realm-management")


async def test_install_get_list_interface(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    doc = _interface()
    installed = await http.post(f"{base}/interfaces", json={"data": doc}, headers=headers)
    assert installed.status_code == 201
    assert installed.content == b""
    assert installed.headers["location"] == "/v1/test/interfaces/org.example.Sensors/0"
    listed = await http.get(f"{base}/interfaces", headers=headers)
    assert listed.json() == {"data": ["org.example.Sensors"]}
    majors = await http.get(f"{base}/interfaces/org.example.Sensors", headers=headers)
    assert majors.json() == {"data": [0]}
    got = await http.get(f"{base}/interfaces/org.example.Sensors/0", headers=headers)
    assert got.json() == {"data": doc}
    detailed = await http.get(f"{base}/interfaces", params={"detailed": "true"}, headers=headers)
    assert detailed.json() == {"data": [doc]}


async def test_standard_interfaces_install(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    files = sorted(STANDARD.glob("*.json"))
    assert len(files) == 6
    for path in files:
        doc = json.loads(path.read_text())
        response = await http.post(f"{base}/interfaces", json={"data": doc}, headers=headers)
        assert response.status_code == 201, (path.name, response.text)
    listed = (await http.get(f"{base}/interfaces", headers=headers)).json()["data"]
    assert sorted(listed) == sorted(json.loads(p.read_text())["interface_name"] for p in files)


async def test_duplicate_and_colliding_names(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    assert (
        await http.post(f"{base}/interfaces", json={"data": _interface()}, headers=headers)
    ).status_code == 201
    again = await http.post(f"{base}/interfaces", json={"data": _interface()}, headers=headers)
    assert again.status_code == 409
    assert again.json() == {"errors": {"detail": "Interface already exists"}}
    collide = await http.post(
        f"{base}/interfaces", json={"data": _interface("org.exam-ple.sensors")}, headers=headers
    )
    assert collide.status_code == 409
    assert "collision" in collide.json()["errors"]["detail"]
    other_major = await http.post(
        f"{base}/interfaces", json={"data": _interface(major=1, minor=0)}, headers=headers
    )
    assert other_major.status_code == 201
    majors = await http.get(f"{base}/interfaces/org.example.Sensors", headers=headers)
    assert majors.json() == {"data": [0, 1]}


async def test_invalid_interface_is_422_with_field_errors(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    doc = _interface(name="Values")
    response = await http.post(f"{base}/interfaces", json={"data": doc}, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"]["interface_name"] == ["has invalid format"]
    bad_type = _interface()
    bad_type["mappings"][0]["type"] = "float"
    response = await http.post(f"{base}/interfaces", json={"data": bad_type}, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"]["mappings"] == [{"type": ["is invalid"]}]
    assert (await http.get(f"{base}/interfaces", headers=headers)).json() == {"data": []}


async def test_overlapping_endpoints(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    doc = _interface()
    doc["mappings"].append({"endpoint": "/temperature/value", "type": "double"})
    response = await http.post(f"{base}/interfaces", json={"data": doc}, headers=headers)
    assert response.status_code == 422
    assert response.json() == {"errors": {"detail": "Overlapping endpoints in interface mappings"}}


async def test_retention_above_realm_maximum(
    http: httpx.AsyncClient,
    rm: tuple[str, dict[str, str]],
    housekeeping_keys: KeyPair,
) -> None:
    base, headers = rm
    await http.patch(
        "/housekeeping/v1/realms/test",
        json={"data": {"datastream_maximum_storage_retention": 600}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    doc = _interface()
    doc["mappings"][0].update(database_retention_policy="use_ttl", database_retention_ttl=3600)
    response = await http.post(f"{base}/interfaces", json={"data": doc}, headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"detail": "database_retention_ttl exceeds the maximum storage retention"}
    }
    limit = await http.get(f"{base}/config/datastream_maximum_storage_retention", headers=headers)
    assert limit.json() == {"data": 600}


async def test_minor_update(http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]) -> None:
    base, headers = rm
    url = f"{base}/interfaces/org.example.Sensors/0"
    await http.post(f"{base}/interfaces", json={"data": _interface()}, headers=headers)
    newer = _interface(minor=2)
    newer["mappings"].append({"endpoint": "/%{sensor}/unit", "type": "string"})
    newer["description"] = "sensors"
    response = await http.put(url, json={"data": newer}, headers=headers)
    assert response.status_code == 204
    assert (await http.get(url, headers=headers)).json() == {"data": newer}


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        (lambda d: d.update(version_minor=1), 409, "Interface minor version was not increased"),
        (
            lambda d: d.update(version_minor=0, version_major=1),
            409,
            "Interface major version doesn't match the one in the interface json",
        ),
        (
            lambda d: d.update(interface_name="org.example.Other"),
            409,
            "Interface name doesn't match the one in the interface json",
        ),
        (
            lambda d: d.update(
                type="properties", mappings=[{"endpoint": "/%{sensor}/value", "type": "double"}]
            ),
            409,
            "Invalid update",
        ),
        (lambda d: d.update(ownership="server"), 409, "Invalid update"),
        (
            lambda d: d["mappings"].__setitem__(
                0, {"endpoint": "/%{sensor}/other", "type": "double"}
            ),
            409,
            "Interface update has missing endpoints",
        ),
        (
            lambda d: d["mappings"][0].update(type="integer"),
            409,
            "Interface update contains incompatible endpoint changes",
        ),
    ],
)
async def test_incompatible_updates_are_refused(
    http: httpx.AsyncClient,
    rm: tuple[str, dict[str, str]],
    change: Any,
    status: int,
    detail: str,
) -> None:
    base, headers = rm
    url = f"{base}/interfaces/org.example.Sensors/0"
    original = _interface()
    await http.post(f"{base}/interfaces", json={"data": original}, headers=headers)
    newer = copy.deepcopy(original)
    newer["version_minor"] = 2
    change(newer)
    response = await http.put(url, json={"data": newer}, headers=headers)
    assert response.status_code == status
    assert response.json() == {"errors": {"detail": detail}}
    assert (await http.get(url, headers=headers)).json() == {"data": original}


async def test_update_of_missing_major(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    response = await http.put(
        f"{base}/interfaces/org.example.Sensors/0", json={"data": _interface()}, headers=headers
    )
    assert response.status_code == 404
    assert response.json() == {"errors": {"detail": "Interface major not found"}}


async def test_delete_interface_rules(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    await http.post(f"{base}/interfaces", json={"data": _interface()}, headers=headers)
    await http.post(
        f"{base}/interfaces", json={"data": _interface(major=1, minor=0)}, headers=headers
    )
    major_one = await http.delete(f"{base}/interfaces/org.example.Sensors/1", headers=headers)
    assert major_one.status_code == 403
    assert major_one.json() == {"errors": {"detail": "Interface can't be deleted"}}
    missing = await http.delete(f"{base}/interfaces/org.example.Nope/0", headers=headers)
    assert missing.status_code == 404
    deleted = await http.delete(f"{base}/interfaces/org.example.Sensors/0", headers=headers)
    assert deleted.status_code == 204
    assert (await http.get(f"{base}/interfaces/org.example.Sensors", headers=headers)).json() == {
        "data": [1]
    }


async def test_unknown_interface_and_bad_major(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    for url, detail in (
        (f"{base}/interfaces/org.example.Nope", "Interface not found"),
        (f"{base}/interfaces/org.example.Nope/0", "Interface not found"),
        (f"{base}/interfaces/org.example.Nope/x", "Invalid major version"),
    ):
        response = await http.get(url, headers=headers)
        assert response.status_code == 404
        assert response.json() == {"errors": {"detail": detail}}


async def test_auth_config_roundtrip(
    http: httpx.AsyncClient,
    rm: tuple[str, dict[str, str]],
    realm_keys: KeyPair,
    other_keys: KeyPair,
) -> None:
    base, headers = rm
    got = await http.get(f"{base}/config/auth", headers=headers)
    assert got.json() == {"data": {"jwt_public_key_pem": realm_keys.public_pem}}
    bad = await http.put(
        f"{base}/config/auth", json={"data": {"jwt_public_key_pem": "nope"}}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json() == {"errors": {"jwt_public_key_pem": ["is not a valid PEM public key"]}}
    changed = await http.put(
        f"{base}/config/auth",
        json={"data": {"jwt_public_key_pem": other_keys.public_pem}},
        headers=headers,
    )
    assert changed.status_code == 204
    old_token = await http.get(f"{base}/config/auth", headers=headers)
    assert old_token.status_code == 401
    new_token = await http.get(
        f"{base}/config/auth", headers=other_keys.headers("realm-management")
    )
    assert new_token.json() == {"data": {"jwt_public_key_pem": other_keys.public_pem}}


async def test_registration_limit_config(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    response = await http.get(f"{base}/config/device_registration_limit", headers=headers)
    assert response.json() == {"data": None}
    retention = await http.get(
        f"{base}/config/datastream_maximum_storage_retention", headers=headers
    )
    assert retention.json() == {"data": 0}


async def test_unknown_realm_is_forbidden_before_auth(http: httpx.AsyncClient) -> None:
    response = await http.get("/realmmanagement/v1/nowhere/interfaces")
    assert response.status_code == 403
    assert response.json() == {"errors": {"detail": "Forbidden"}}


async def test_unknown_route_wording(
    http: httpx.AsyncClient, rm: tuple[str, dict[str, str]]
) -> None:
    base, headers = rm
    response = await http.get(f"{base}/nothing", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"errors": {"detail": "Not found"}}
