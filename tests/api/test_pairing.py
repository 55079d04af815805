"""Pairing API over real HTTP: agent registration, device info, credentials and verification."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.conftest import KeyPair, platform_settings

from astraea import __version__
from astraea.core.device_id import encode_device_id
from astraea.pairing.ca import CertificateAuthority
from astraea.platform import Platform

DEVICE = encode_device_id(bytes(range(16)))
OTHER = encode_device_id(bytes(range(16, 32)))
AGENT = "/pairing/v1/test/agent/devices"
DEVICE_URL = f"/pairing/v1/test/devices/{DEVICE}"
CREDENTIALS = f"{DEVICE_URL}/protocols/astarte_mqtt_v1/credentials"
VERIFY = f"{CREDENTIALS}/verify"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z")


def _csr(device_id: str = DEVICE) -> str:
    """What the official SDK sends: an EC P-256 key, SHA-256, O=Devices, CN=<realm>/<id>."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"test/{device_id}"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _errors(response: httpx.Response) -> object:
    return response.json()["errors"]


async def _register(
    http: httpx.AsyncClient, keys: KeyPair, hw_id: str = DEVICE, **extra: object
) -> str:
    response = await http.post(
        AGENT, json={"data": {"hw_id": hw_id, **extra}}, headers=keys.headers("pairing")
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["data"]["credentials_secret"]
    return secret


async def _certificate(http: httpx.AsyncClient, secret: str, device_id: str = DEVICE) -> str:
    url = f"/pairing/v1/test/devices/{device_id}/protocols/astarte_mqtt_v1/credentials"
    response = await http.post(
        url, json={"data": {"csr": _csr(device_id)}}, headers=_bearer(secret)
    )
    assert response.status_code == 201, response.text
    pem: str = response.json()["data"]["client_crt"]
    return pem


async def _status(http: httpx.AsyncClient, secret: str) -> str:
    response = await http.get(DEVICE_URL, headers=_bearer(secret))
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["status"]
    return status


async def _verify(http: httpx.AsyncClient, secret: str, pem: str) -> dict[str, object]:
    response = await http.post(VERIFY, json={"data": {"client_crt": pem}}, headers=_bearer(secret))
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_registration_credentials_and_reregistration(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair, platform: Platform
) -> None:
    secret = await _register(http, realm_keys)
    assert len(base64.b64decode(secret, validate=True)) == 32

    info = await http.get(DEVICE_URL, headers=_bearer(secret))
    assert info.json() == {
        "data": {
            "version": __version__,
            "status": "pending",
            "protocols": {"astarte_mqtt_v1": {"broker_url": platform.broker_url}},
        }
    }

    pem = await _certificate(http, secret)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == f"test/{DEVICE}"
    assert await _status(http, secret) == "confirmed"

    again = await http.post(
        AGENT, json={"data": {"hw_id": DEVICE}}, headers=realm_keys.headers("pairing")
    )
    assert again.status_code == 422
    assert _errors(again) == {"detail": "Device already registered"}

    removed = await http.delete(f"{AGENT}/{DEVICE}", headers=realm_keys.headers("pairing"))
    assert (removed.status_code, removed.content) == (204, b"")
    assert (await http.get(DEVICE_URL, headers=_bearer(secret))).status_code == 403

    new_secret = await _register(http, realm_keys)
    assert new_secret != secret
    assert await _status(http, new_secret) == "pending"


async def test_pending_device_may_register_again_with_a_new_secret(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    first = await _register(http, realm_keys)
    second = await _register(http, realm_keys)

    assert (await http.get(DEVICE_URL, headers=_bearer(first))).status_code == 403
    assert await _status(http, second) == "pending"


INVALID_REGISTRATIONS: list[tuple[dict[str, object], dict[str, list[str]]]] = [
    ({}, {"hw_id": ["can't be blank"]}),
    ({"hw_id": ""}, {"hw_id": ["can't be blank"]}),
    ({"hw_id": 12}, {"hw_id": ["is invalid"]}),
    ({"hw_id": "AAAA"}, {"hw_id": ["is not a valid base64 encoded 128 bits id"]}),
    ({"hw_id": "not base64!"}, {"hw_id": ["is not a valid base64 encoded 128 bits id"]}),
    (
        {"hw_id": DEVICE, "initial_introspection": {"org.x.A": {"major": 1}}},
        {"initial_introspection": ["has invalid format for interface org.x.A"]},
    ),
    (
        {"hw_id": DEVICE, "initial_introspection": {"org.x.A": 3}},
        {"initial_introspection": ["has invalid format for interface org.x.A"]},
    ),
    (
        {"hw_id": DEVICE, "initial_introspection": {"org.x.A": {"major": "1", "minor": 0}}},
        {"initial_introspection": ["has invalid format for interface org.x.A"]},
    ),
    (
        {"hw_id": DEVICE, "initial_introspection": {"org.x.A": {"major": -1, "minor": 0}}},
        {"initial_introspection": ["has negative versions in interface org.x.A"]},
    ),
    ({"hw_id": DEVICE, "initial_introspection": []}, {"initial_introspection": ["is invalid"]}),
]


async def test_registration_validation(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    for data, errors in INVALID_REGISTRATIONS:
        response = await http.post(
            AGENT, json={"data": data}, headers=realm_keys.headers("pairing")
        )
        assert (response.status_code, _errors(response)) == (422, errors), data


async def test_registration_without_data_is_a_bad_request(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    response = await http.post(AGENT, json={"hw_id": DEVICE}, headers=realm_keys.headers("pairing"))

    assert response.status_code == 400
    assert _errors(response) == {"detail": "Bad request"}


async def test_initial_introspection_is_stored(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    introspection = {"org.x.A": {"major": 1, "minor": 2}, "org.x.B": {"major": 0, "minor": 1}}
    await _register(http, realm_keys, initial_introspection=introspection)

    listed = await http.get(
        f"/appengine/v1/test/devices/{DEVICE}/interfaces", headers=realm_keys.headers("appengine")
    )
    assert listed.json() == {"data": ["org.x.A", "org.x.B"]}


async def test_extended_ids_identify_the_device_by_their_first_128_bits(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    extended = base64.urlsafe_b64encode(bytes(range(16)) + b"extension").decode().rstrip("=")
    secret = await _register(http, realm_keys, hw_id=extended)

    info = await http.get(f"/pairing/v1/test/devices/{extended}", headers=_bearer(secret))
    assert info.status_code == 200
    assert await _status(http, secret) == "pending"
    pem = await _certificate(http, secret, extended)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    assert certificate.subject.rfc4514_string() == f"CN=test/{DEVICE}"
    # Unregistration takes 128-bit ids only, as in Astarte.
    refused = await http.delete(f"{AGENT}/{extended}", headers=realm_keys.headers("pairing"))
    assert (refused.status_code, _errors(refused)) == (400, {"detail": "Bad request"})


async def test_registration_limit(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair, housekeeping_keys: KeyPair
) -> None:
    patched = await http.patch(
        "/housekeeping/v1/realms/test",
        json={"data": {"device_registration_limit": 1}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    assert patched.status_code == 200, patched.text
    await _register(http, realm_keys, DEVICE)

    refused = await http.post(
        AGENT, json={"data": {"hw_id": OTHER}}, headers=realm_keys.headers("pairing")
    )
    assert refused.status_code == 422
    assert _errors(refused) == {"detail": "Device registration limit reached"}
    await _register(http, realm_keys, DEVICE)
    await http.delete(f"{AGENT}/{DEVICE}", headers=realm_keys.headers("pairing"))
    await _register(http, realm_keys, OTHER)


async def test_unregister_errors(http: httpx.AsyncClient, realm: str, realm_keys: KeyPair) -> None:
    headers = realm_keys.headers("pairing")
    missing = await http.delete(f"{AGENT}/{DEVICE}", headers=headers)
    assert (missing.status_code, _errors(missing)) == (404, {"detail": "Device not found"})
    invalid = await http.delete(f"{AGENT}/nope", headers=headers)
    assert (invalid.status_code, _errors(invalid)) == (400, {"detail": "Bad request"})


async def test_agent_authorization(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    unknown_realm = await http.post(
        "/pairing/v1/nowhere/agent/devices", json={"data": {"hw_id": DEVICE}}
    )
    assert (unknown_realm.status_code, _errors(unknown_realm)) == (403, {"detail": "Forbidden"})
    no_token = await http.post(AGENT, json={"data": {"hw_id": DEVICE}})
    assert no_token.status_code == 401
    assert _errors(no_token) == {"detail": "Missing authorization token"}
    wrong_claim = await http.post(
        AGENT, json={"data": {"hw_id": DEVICE}}, headers=realm_keys.headers("appengine")
    )
    assert wrong_claim.status_code == 403
    narrow = realm_keys.headers("pairing", claims=["DELETE::agent/devices/.*"])
    assert (
        await http.post(AGENT, json={"data": {"hw_id": DEVICE}}, headers=narrow)
    ).status_code == 403
    assert (await http.delete(f"{AGENT}/{DEVICE}", headers=narrow)).status_code == 404


async def test_device_bearer_spellings(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    secret = await _register(http, realm_keys)

    for scheme in ("Bearer", "bearer", "BEARER:", "Bearer:"):
        response = await http.get(DEVICE_URL, headers={"Authorization": f"{scheme} {secret}"})
        assert response.status_code == 200, scheme


async def test_device_authentication_errors(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    secret = await _register(http, realm_keys)
    csr_body = {"data": {"csr": _csr()}}
    for method, url, body in (
        ("GET", DEVICE_URL, None),
        ("POST", CREDENTIALS, csr_body),
        ("POST", VERIFY, {"data": {"client_crt": "x"}}),
    ):
        missing = await http.request(method, url, json=body)
        assert (missing.status_code, _errors(missing)) == (401, {"detail": "Unauthorized"})
        basic = await http.request(method, url, json=body, headers={"Authorization": "Basic x"})
        assert basic.status_code == 401
        wrong = await http.request(method, url, json=body, headers=_bearer("wrong" + secret))
        assert (wrong.status_code, _errors(wrong)) == (403, {"detail": "Forbidden"})
        unknown = await http.request(
            method, url.replace(DEVICE, OTHER), json=body, headers=_bearer(secret)
        )
        assert (unknown.status_code, _errors(unknown)) == (404, {"detail": "Device not found"})
        invalid = await http.request(
            method, url.replace(DEVICE, "bad"), json=body, headers=_bearer(secret)
        )
        assert (invalid.status_code, _errors(invalid)) == (400, {"detail": "Bad request"})
        no_realm = await http.request(method, url.replace("/test/", "/nowhere/"), json=body)
        assert (no_realm.status_code, _errors(no_realm)) == (403, {"detail": "Forbidden"})


async def test_credentials_request_errors(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    secret = await _register(http, realm_keys)
    headers = _bearer(secret)

    garbage = await http.post(CREDENTIALS, json={"data": {"csr": "garbage"}}, headers=headers)
    assert (garbage.status_code, _errors(garbage)) == (422, {"csr": ["is not a valid PEM CSR"]})
    blank = await http.post(CREDENTIALS, json={"data": {}}, headers=headers)
    assert (blank.status_code, _errors(blank)) == (422, {"csr": ["can't be blank"]})
    no_data = await http.post(CREDENTIALS, json={"csr": _csr()}, headers=headers)
    assert (no_data.status_code, _errors(no_data)) == (400, {"detail": "Bad request"})
    other_protocol = await http.post(
        CREDENTIALS.replace("astarte_mqtt_v1", "astarte_mqtt_v2"),
        json={"data": {"csr": _csr()}},
        headers=headers,
    )
    assert (other_protocol.status_code, _errors(other_protocol)) == (
        400,
        {"detail": "Bad request"},
    )
    other_verify = await http.post(
        VERIFY.replace("astarte_mqtt_v1", "other"),
        json={"data": {"client_crt": "x"}},
        headers=headers,
    )
    assert other_verify.status_code == 400
    no_cert = await http.post(VERIFY, json={"data": {}}, headers=headers)
    assert (no_cert.status_code, _errors(no_cert)) == (422, {"client_crt": ["can't be blank"]})
    assert await _status(http, secret) == "pending"


async def test_inhibited_device_gets_no_certificate(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair
) -> None:
    secret = await _register(http, realm_keys)
    pem = await _certificate(http, secret)
    inhibit = await http.patch(
        f"/appengine/v1/test/devices/{DEVICE}",
        json={"data": {"credentials_inhibited": True}},
        headers=realm_keys.headers("appengine"),
    )
    assert inhibit.status_code == 200, inhibit.text

    assert await _status(http, secret) == "inhibited"
    refused = await http.post(CREDENTIALS, json={"data": {"csr": _csr()}}, headers=_bearer(secret))
    assert (refused.status_code, _errors(refused)) == (403, {"detail": "Forbidden"})
    # Certificates already issued stay valid until they expire.
    assert (await _verify(http, secret, pem))["valid"] is True


async def test_verify_valid_superseded_and_foreign_certificates(
    http: httpx.AsyncClient, realm: str, realm_keys: KeyPair, tmp_path: Path
) -> None:
    secret = await _register(http, realm_keys)
    first = await _certificate(http, secret)

    valid = await _verify(http, secret, first)
    assert set(valid) == {"valid", "timestamp", "until"}
    assert valid["valid"] is True
    assert TIMESTAMP.fullmatch(str(valid["timestamp"])) and TIMESTAMP.fullmatch(str(valid["until"]))

    second = await _certificate(http, secret)
    revoked = await _verify(http, secret, first)
    assert set(revoked) == {"valid", "timestamp", "cause", "details"}
    assert (revoked["valid"], revoked["cause"], revoked["details"]) == (False, "REVOKED", None)
    assert (await _verify(http, secret, second))["valid"] is True

    garbage = await _verify(http, secret, "not a certificate")
    assert (garbage["valid"], garbage["cause"]) == (False, "INVALID")
    foreign_ca = CertificateAuthority.load_or_create(tmp_path / "foreign-ca")
    foreign = foreign_ca.issue_device_certificate(_csr(), "test", DEVICE).pem
    assert (await _verify(http, secret, foreign))["cause"] == "INVALID_ISSUER"


async def test_registered_device_survives_a_restart(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    settings = platform_settings(tmp_path / "data", housekeeping_keys)

    first = Platform(settings)
    await first.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}") as http:
            created = await http.post(
                "/housekeeping/v1/realms",
                json={"data": {"realm_name": "test", "jwt_public_key_pem": realm_keys.public_pem}},
                headers=housekeeping_keys.headers("housekeeping"),
            )
            assert created.status_code == 201
            secret = await _register(http, realm_keys)
            pem = await _certificate(http, secret)
    finally:
        await first.stop()

    second = Platform(settings)
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.http_port}") as http:
            assert await _status(http, secret) == "confirmed"
            assert (await _verify(http, secret, pem))["valid"] is True
    finally:
        await second.stop()
