"""Housekeeping API over real HTTP: realm lifecycle, validation and its error shapes."""

from __future__ import annotations

import httpx
import pytest
from tests.conftest import KeyPair

REALMS = "/housekeeping/v1/realms"


@pytest.fixture
def hk(housekeeping_keys: KeyPair) -> dict[str, str]:
    return housekeeping_keys.headers("housekeeping")


async def test_create_get_list_realm(
    http: httpx.AsyncClient, hk: dict[str, str], realm_keys: KeyPair
) -> None:
    body = {
        "data": {
            "realm_name": "acme",
            "jwt_public_key_pem": realm_keys.public_pem,
            "device_registration_limit": 10,
        }
    }
    created = await http.post(REALMS, json=body, headers=hk)
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/realms/acme"
    expected = {
        "realm_name": "acme",
        "jwt_public_key_pem": realm_keys.public_pem,
        "replication_class": "SimpleStrategy",
        "replication_factor": 1,
        "device_registration_limit": 10,
        "datastream_maximum_storage_retention": None,
    }
    assert created.json() == {"data": expected}
    assert (await http.get(f"{REALMS}/acme", headers=hk)).json() == {"data": expected}
    assert (await http.get(REALMS, headers=hk)).json() == {"data": ["acme"]}


async def test_network_topology_replication(
    http: httpx.AsyncClient, hk: dict[str, str], realm_keys: KeyPair
) -> None:
    body = {
        "data": {
            "realm_name": "dc",
            "jwt_public_key_pem": realm_keys.public_pem,
            "replication_class": "NetworkTopologyStrategy",
            "datacenter_replication_factors": {"dc1": 3},
        }
    }
    created = await http.post(REALMS, json=body, headers=hk)
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["datacenter_replication_factors"] == {"dc1": 3}
    assert "replication_factor" not in data


async def test_duplicate_realm_conflicts(
    http: httpx.AsyncClient, hk: dict[str, str], realm: str, realm_keys: KeyPair
) -> None:
    body = {"data": {"realm_name": realm, "jwt_public_key_pem": realm_keys.public_pem}}
    response = await http.post(REALMS, json=body, headers=hk)
    assert response.status_code == 409
    assert response.json() == {"errors": {"detail": "Realm already exists"}}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"realm_name": "Bad_Name"}, {"realm_name": ["has invalid format"]}),
        ({"realm_name": "a" * 49}, {"realm_name": ["has invalid format"]}),
        ({"realm_name": "astarte"}, {"realm_name": ["has invalid format"]}),
        ({"realm_name": "system"}, {"realm_name": ["has invalid format"]}),
        ({"realm_name": None}, {"realm_name": ["can't be blank"]}),
        ({"realm_name": 12}, {"realm_name": ["is invalid"]}),
        (
            {"jwt_public_key_pem": "not a key"},
            {"jwt_public_key_pem": ["is not a valid PEM public key"]},
        ),
        ({"jwt_public_key_pem": None}, {"jwt_public_key_pem": ["can't be blank"]}),
        (
            {"device_registration_limit": -1},
            {"device_registration_limit": ["must be greater than or equal to 0"]},
        ),
        ({"device_registration_limit": "5"}, {"device_registration_limit": ["is invalid"]}),
        ({"device_registration_limit": True}, {"device_registration_limit": ["is invalid"]}),
        (
            {"datastream_maximum_storage_retention": -5},
            {"datastream_maximum_storage_retention": ["must be greater than or equal to 0"]},
        ),
        ({"replication_factor": 0}, {"replication_factor": ["must be greater than 0"]}),
        ({"replication_class": "Other"}, {"replication_class": ["is invalid"]}),
        (
            {"replication_class": "NetworkTopologyStrategy"},
            {
                "datacenter_replication_factors": [
                    "needs to be provided with NetworkTopologyStrategy"
                ]
            },
        ),
        (
            {"replication_class": "NetworkTopologyStrategy", "datacenter_replication_factors": {}},
            {"datacenter_replication_factors": ["must not be empty"]},
        ),
        (
            {
                "replication_class": "NetworkTopologyStrategy",
                "datacenter_replication_factors": {"dc1": 0},
            },
            {"datacenter_replication_factors": ["has invalid replication factor: dc1"]},
        ),
        (
            {"datacenter_replication_factors": {"dc1": 1}},
            {
                "datacenter_replication_factors": [
                    "must be used with replication_class NetworkTopologyStrategy"
                ]
            },
        ),
    ],
)
async def test_invalid_realm_is_rejected_and_not_stored(
    http: httpx.AsyncClient,
    hk: dict[str, str],
    realm_keys: KeyPair,
    changes: dict[str, object],
    errors: dict[str, list[str]],
) -> None:
    body = {"realm_name": "valid", "jwt_public_key_pem": realm_keys.public_pem, **changes}
    response = await http.post(REALMS, json={"data": body}, headers=hk)
    assert response.status_code == 422
    assert response.json() == {"errors": errors}
    assert (await http.get(REALMS, headers=hk)).json() == {"data": []}


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"realm_name": "x"}', b'{"data": "x"}', b'{"data": [1]}', b""],
)
async def test_malformed_bodies_are_bad_requests(
    http: httpx.AsyncClient, hk: dict[str, str], content: bytes
) -> None:
    response = await http.post(
        REALMS, content=content, headers={**hk, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"errors": {"detail": "Bad request"}}


async def test_oversized_body_is_refused_unread(
    http: httpx.AsyncClient, hk: dict[str, str]
) -> None:
    huge = b'{"data": {"realm_name": "big", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    response = await http.post(REALMS, content=huge, headers=hk)
    assert response.status_code == 413
    assert "larger than" in response.json()["errors"]["detail"]
    assert (await http.get(REALMS, headers=hk)).json() == {"data": []}


async def test_patch_realm(
    http: httpx.AsyncClient, hk: dict[str, str], realm: str, other_keys: KeyPair
) -> None:
    patch = {
        "data": {
            "device_registration_limit": 5,
            "jwt_public_key_pem": other_keys.public_pem,
            "datastream_maximum_storage_retention": 3600,
        }
    }
    response = await http.patch(f"{REALMS}/{realm}", json=patch, headers=hk)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["device_registration_limit"] == 5
    assert data["jwt_public_key_pem"] == other_keys.public_pem
    assert data["datastream_maximum_storage_retention"] == 3600
    unset = await http.patch(
        f"{REALMS}/{realm}", json={"data": {"device_registration_limit": None}}, headers=hk
    )
    assert unset.json()["data"]["device_registration_limit"] is None


async def test_invalid_patch_changes_nothing(
    http: httpx.AsyncClient, hk: dict[str, str], realm: str, realm_keys: KeyPair
) -> None:
    patch = {"data": {"device_registration_limit": 3, "jwt_public_key_pem": "garbage"}}
    response = await http.patch(f"{REALMS}/{realm}", json=patch, headers=hk)
    assert response.status_code == 422
    assert response.json() == {"errors": {"jwt_public_key_pem": ["is not a valid PEM public key"]}}
    data = (await http.get(f"{REALMS}/{realm}", headers=hk)).json()["data"]
    assert data["device_registration_limit"] is None
    assert data["jwt_public_key_pem"] == realm_keys.public_pem


async def test_unknown_realm_is_404(http: httpx.AsyncClient, hk: dict[str, str]) -> None:
    for response in (
        await http.get(f"{REALMS}/nope", headers=hk),
        await http.patch(f"{REALMS}/nope", json={"data": {}}, headers=hk),
    ):
        assert response.status_code == 404
        assert response.json() == {"errors": {"detail": "Realm not found"}}


async def test_realm_deletion_disabled_by_default(
    http: httpx.AsyncClient, hk: dict[str, str], realm: str
) -> None:
    response = await http.delete(f"{REALMS}/{realm}", headers=hk)
    assert response.status_code == 405
    assert response.json() == {"errors": {"detail": "Realm deletion disabled"}}
    assert (await http.get(REALMS, headers=hk)).json() == {"data": [realm]}


async def test_replication_defaults_and_versions(
    http: httpx.AsyncClient, hk: dict[str, str]
) -> None:
    defaults = await http.get("/housekeeping/v1/realm-defaults/replication", headers=hk)
    assert defaults.json() == {
        "data": {"replication_class": "simple_strategy", "replication_factor": 1}
    }
    assert (await http.get("/housekeeping/v1/version", headers=hk)).json()["data"]
    assert (await http.get("/housekeeping/version")).json()["data"]


async def test_unknown_route_uses_housekeeping_wording(
    http: httpx.AsyncClient, hk: dict[str, str]
) -> None:
    response = await http.get("/housekeeping/v1/nothing/here", headers=hk)
    assert response.status_code == 404
    assert response.json() == {"errors": {"detail": "Page not found"}}
