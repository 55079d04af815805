"""Every authorization outcome over real HTTP, as Astarte's APIs decide them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from tests.conftest import KeyPair, platform_settings

from astraea.platform import Platform

INTERFACES = "/realmmanagement/v1/test/interfaces"


def _detail(response: httpx.Response) -> str:
    detail: str = response.json()["errors"]["detail"]
    return detail


async def test_missing_token(http: httpx.AsyncClient, realm: str) -> None:
    response = await http.get(INTERFACES)
    assert response.status_code == 401
    assert _detail(response) == "Missing authorization token"
    garbage_scheme = await http.get(INTERFACES, headers={"Authorization": "Basic abc"})
    assert garbage_scheme.status_code == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "Bearer:", "BEARER:"])
async def test_bearer_spellings(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair, scheme: str
) -> None:
    token = realm_keys.token("realm-management")
    response = await http.get(INTERFACES, headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200


async def test_bad_signature(http: httpx.AsyncClient, realm: str, realm_keys: KeyPair) -> None:
    token = realm_keys.token("realm-management")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert _detail(response) == "Invalid JWT token"


async def test_token_from_a_foreign_key(
    http: httpx.AsyncClient, realm: str, other_keys: KeyPair
) -> None:
    response = await http.get(INTERFACES, headers=other_keys.headers("realm-management"))
    assert response.status_code == 401
    assert _detail(response) == "Invalid JWT token"


async def test_not_a_jwt(http: httpx.AsyncClient, realm: str) -> None:
    response = await http.get(INTERFACES, headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401


async def test_expired_token(http: httpx.AsyncClient, realm: str, realm_keys: KeyPair) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"a_rma": [".*::.*"], "iat": now - 120, "exp": now - 60},
        realm_keys.private_pem,
        algorithm="RS256",
    )
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert _detail(response) == "Invalid JWT token"


async def test_not_yet_valid_token(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    token = jwt.encode(
        {"a_rma": [".*::.*"], "nbf": int(time.time()) + 600},
        realm_keys.private_pem,
        algorithm="RS256",
    )
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_symmetric_and_unsigned_tokens_are_refused(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    unsigned = jwt.encode({"a_rma": [".*::.*"]}, None, algorithm="none")
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401
    # The classic confusion attack: the public key used as an HMAC secret.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(b'{"a_rma":[".*::.*"]}').decode()
    import hashlib
    import hmac

    mac = hmac.new(realm_keys.public_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    forged = f"{header}.{payload}.{jwt.utils.base64url_encode(mac.digest()).decode()}"
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_token_of_another_realm_never_opens_this_one(
    http: httpx.AsyncClient, realm: str, housekeeping_keys: KeyPair, other_keys: KeyPair
) -> None:
    created = await http.post(
        "/housekeeping/v1/realms",
        json={"data": {"realm_name": "other", "jwt_public_key_pem": other_keys.public_pem}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    assert created.status_code == 201
    other_token = other_keys.headers("realm-management")
    assert (
        await http.get("/realmmanagement/v1/other/interfaces", headers=other_token)
    ).status_code == 200
    response = await http.get(INTERFACES, headers=other_token)
    assert response.status_code == 401


async def test_claim_of_another_api_does_not_count(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    response = await http.get(INTERFACES, headers=realm_keys.headers("appengine"))
    assert response.status_code == 403
    assert _detail(response) == (
        "Unauthorized access to GET /v1/test/interfaces. Please verify your permissions"
    )


@pytest.mark.parametrize(
    ("claims", "method", "path", "allowed"),
    [
        (["GET::interfaces"], "GET", "/interfaces", True),
        (["GET::interfaces"], "POST", "/interfaces", False),
        (["GET::interfaces"], "GET", "/interfaces/org.example.X", False),  # anchored at the end
        (["GET::faces"], "GET", "/interfaces", False),  # anchored at the start
        (["G.T::interfaces"], "GET", "/interfaces", True),
        (["GE::interfaces"], "GET", "/interfaces", False),  # method regex anchored too
        (["GET::interfaces/.*"], "GET", "/interfaces/org.example.X/0", True),
        (["GET::config/.*", "GET::interfaces"], "GET", "/interfaces", True),
        (["(GET|PUT)::config/auth"], "PUT", "/config/auth", True),
        (
            ["GET::interfaces/[z-a]", "GET::interfaces"],
            "GET",
            "/interfaces",
            True,
        ),  # bad regex skipped
        (["nonsense", "GET"], "GET", "/interfaces", False),
        ([], "GET", "/interfaces", False),
    ],
)
async def test_claim_regexes_are_anchored(
    http: httpx.AsyncClient,
    realm: str,
    realm_keys: KeyPair,
    claims: list[str],
    method: str,
    path: str,
    allowed: bool,
) -> None:
    headers = realm_keys.headers("realm-management", claims=claims)
    response = await http.request(method, f"/realmmanagement/v1/test{path}", headers=headers)
    if allowed:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403
        assert "Unauthorized access" in _detail(response)


async def test_claim_that_is_not_a_list(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    token = jwt.encode({"a_rma": ".*::.*"}, realm_keys.private_pem, algorithm="RS256")
    response = await http.get(INTERFACES, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


async def test_ec_and_pss_algorithms(
    http: httpx.AsyncClient, housekeeping_keys: KeyPair, other_keys: KeyPair
) -> None:
    await http.post(
        "/housekeeping/v1/realms",
        json={"data": {"realm_name": "ec", "jwt_public_key_pem": other_keys.public_pem}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    ec_token = other_keys.token("realm-management")
    assert jwt.get_unverified_header(ec_token)["alg"] == "ES256"
    response = await http.get(
        "/realmmanagement/v1/ec/interfaces", headers={"Authorization": f"Bearer {ec_token}"}
    )
    assert response.status_code == 200
    pss = jwt.encode({"a_ha": [".*::.*"]}, housekeeping_keys.private_pem, algorithm="PS384")
    realms = await http.get("/housekeeping/v1/realms", headers={"Authorization": f"Bearer {pss}"})
    assert realms.status_code == 200


async def test_housekeeping_auth_path_is_relative_to_v1(
    http: httpx.AsyncClient, housekeeping_keys: KeyPair
) -> None:
    listing = housekeeping_keys.headers("housekeeping", claims=["GET::realms"])
    assert (await http.get("/housekeeping/v1/realms", headers=listing)).status_code == 200
    assert (await http.get("/housekeeping/v1/realms/x", headers=listing)).status_code == 403
    realm_key = housekeeping_keys.headers("realm-management")
    assert (await http.get("/housekeeping/v1/realms", headers=realm_key)).status_code == 403


async def test_disabled_auth_opens_every_api(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    platform = Platform(platform_settings(tmp_path / "d", housekeeping_keys, disable_auth=True))
    await platform.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.http_port}") as http:
            created = await http.post(
                "/housekeeping/v1/realms",
                json={"data": {"realm_name": "open", "jwt_public_key_pem": realm_keys.public_pem}},
            )
            assert created.status_code == 201
            assert (await http.get("/realmmanagement/v1/open/interfaces")).status_code == 200
            unknown = await http.get("/realmmanagement/v1/ghost/interfaces")
            assert unknown.status_code == 403
    finally:
        await platform.stop()
