"""AppEngine device routes over real HTTP; devices are arranged through the platform's storage."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tests.conftest import KeyPair

from astraea.core.device_id import encode_device_id
from astraea.platform import Platform
from astraea.storage.base import DeviceRepository, TrafficUpdate

T0 = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
DEVICE = encode_device_id(bytes(range(16)))
OTHER = encode_device_id(bytes(range(16, 32)))
BASE = "/appengine/v1/test"
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


def _id(n: int) -> str:
    return encode_device_id(n.to_bytes(16, "big"))


@pytest.fixture
def devices(platform: Platform, realm: str) -> DeviceRepository:
    assert platform.storage is not None
    return platform.storage.devices


@pytest.fixture
def headers(realm: str, realm_keys: KeyPair) -> dict[str, str]:
    return realm_keys.headers("appengine")


def _errors(response: httpx.Response) -> object:
    return response.json()["errors"]


async def _patch(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    data: object,
    path: str = f"{BASE}/devices/{DEVICE}",
    content_type: str = "application/merge-patch+json",
) -> httpx.Response:
    return await http.patch(
        path,
        content=json.dumps({"data": data}),
        headers={**headers, "content-type": content_type},
    )


async def test_device_status_has_every_key(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    await devices.register("test", DEVICE, "hash", {"org.x.A": (0, 2), "org.x.B": (1, 0)}, T0)
    await devices.record_credentials("test", DEVICE, "12", "ab", "10.0.0.9", T0)
    await devices.mark_connected("test", DEVICE, "10.0.0.7", T0 + timedelta(seconds=1))
    await devices.add_traffic(
        [
            TrafficUpdate("test", DEVICE, "org.x.A", 0, 3, 30, T0),
            TrafficUpdate("test", DEVICE, None, None, 1, 5, T0),
        ]
    )
    await devices.set_introspection("test", DEVICE, {"org.x.A": (1, 0), "org.x.B": (1, 0)})
    await devices.update_aliases("test", DEVICE, {"name": "kitchen"})
    await devices.update_attributes("test", DEVICE, {"floor": "1"})

    response = await http.get(f"{BASE}/devices/{DEVICE}", headers=headers)

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "id": DEVICE,
            "connected": True,
            "introspection": {
                "org.x.A": {"major": 1, "minor": 0, "exchanged_msgs": 0, "exchanged_bytes": 0},
                "org.x.B": {"major": 1, "minor": 0, "exchanged_msgs": 0, "exchanged_bytes": 0},
            },
            "total_received_msgs": 4,
            "total_received_bytes": 35,
            "last_connection": "2024-05-01T10:00:01.123Z",
            "last_disconnection": None,
            "first_registration": "2024-05-01T10:00:00.123Z",
            "first_credentials_request": "2024-05-01T10:00:00.123Z",
            "last_seen_ip": "10.0.0.7",
            "last_credentials_request_ip": "10.0.0.9",
            "credentials_inhibited": False,
            "aliases": {"name": "kitchen"},
            "attributes": {"floor": "1"},
            "groups": [],
            "previous_interfaces": [
                {
                    "name": "org.x.A",
                    "major": 0,
                    "minor": 2,
                    "exchanged_msgs": 3,
                    "exchanged_bytes": 30,
                }
            ],
            "deletion_in_progress": False,
        }
    }
    by_alias = await http.get(f"{BASE}/devices-by-alias/kitchen", headers=headers)
    assert by_alias.json() == response.json()


async def test_device_lookup_errors(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    extended = base64.urlsafe_b64encode(bytes(range(20))).decode().rstrip("=")
    await devices.register("test", DEVICE, "hash", {}, T0)
    for path in (f"devices/{extended}", "devices/short", f"devices/{extended}/interfaces"):
        response = await http.get(f"{BASE}/{path}", headers=headers)
        assert (response.status_code, _errors(response)) == (400, {"detail": "Bad request"}), path
    for path in (
        f"devices/{OTHER}",
        f"devices/{OTHER}/interfaces",
        "devices-by-alias/nobody",
        "devices-by-alias/nobody/interfaces",
    ):
        response = await http.get(f"{BASE}/{path}", headers=headers)
        assert (response.status_code, _errors(response)) == (404, {"detail": "Device not found"})
    patched = await _patch(http, headers, {"aliases": {"a": "b"}}, f"{BASE}/devices/{OTHER}")
    assert patched.status_code == 404


async def test_device_list_pages_with_links(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    ids = [_id(n) for n in (50, 10, 40, 20, 30)]
    for device_id in ids:
        await devices.register("test", device_id, "hash", {}, T0)

    everything = await http.get(f"{BASE}/devices", headers=headers)
    assert everything.json() == {"links": {"self": "/v1/test/devices"}, "data": sorted(ids)}

    first = (await http.get(f"{BASE}/devices", params={"limit": 2}, headers=headers)).json()
    assert first["data"] == [_id(10), _id(20)]
    assert first["links"] == {
        "self": "/v1/test/devices?limit=2",
        "next": f"/v1/test/devices?from_token={20}&limit=2",
    }
    seen = list(first["data"])
    link = first["links"].get("next")
    while link is not None:
        page = (await http.get(f"/appengine{link}", headers=headers)).json()
        assert page["links"]["self"] == link
        seen += page["data"]
        link = page["links"].get("next")
    assert seen == sorted(ids)

    full = (await http.get(f"{BASE}/devices?limit=5&details=true", headers=headers)).json()
    assert [status["id"] for status in full["data"]] == sorted(ids)
    assert full["data"][0]["first_registration"] == "2024-05-01T10:00:00.123Z"
    assert full["links"]["self"] == "/v1/test/devices?details=true&limit=5"
    last = (await http.get(f"/appengine{full['links']['next']}", headers=headers)).json()
    assert last == {"links": {"self": full["links"]["next"]}, "data": []}
    huge = await http.get(f"{BASE}/devices?limit={10**30}", headers=headers)
    assert huge.json()["data"] == sorted(ids)


LIST_OPTION_ERRORS = [
    ("limit=0", {"limit": ["must be greater than 0"]}),
    ("limit=-3", {"limit": ["must be greater than 0"]}),
    ("limit=many", {"limit": ["is invalid"]}),
    ("from_token=x1", {"from_token": ["is invalid"]}),
    ("details=maybe", {"details": ["is invalid"]}),
    ("limit=0&from_token=1.5", {"limit": ["must be greater than 0"], "from_token": ["is invalid"]}),
]


async def test_device_list_option_errors(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for query, errors in LIST_OPTION_ERRORS:
        response = await http.get(f"{BASE}/devices?{query}", headers=headers)
        assert (response.status_code, _errors(response)) == (422, errors), query


async def test_aliases_merge_patch(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    await devices.register("test", DEVICE, "hash", {}, T0)
    await devices.register("test", OTHER, "hash", {}, T0)

    created = await _patch(http, headers, {"aliases": {"name": "one", "serial": "s1"}})
    assert created.status_code == 200
    assert created.json()["data"]["aliases"] == {"name": "one", "serial": "s1"}
    taken = await _patch(http, headers, {"aliases": {"name": "one"}}, f"{BASE}/devices/{OTHER}")
    assert (taken.status_code, _errors(taken)) == (409, {"detail": "Alias already in use"})
    for bad in ({"": "x"}, {"name": ""}, {"name": 3}, ["name"], None):
        response = await _patch(http, headers, {"aliases": bad})
        assert (response.status_code, _errors(response)) == (400, {"detail": "Invalid alias"}), bad
    missing = await _patch(http, headers, {"aliases": {"nope": None}})
    assert (missing.status_code, _errors(missing)) == (400, {"detail": "Alias tag not found"})

    by_alias = await _patch(
        http, headers, {"aliases": {"serial": None}}, f"{BASE}/devices-by-alias/one"
    )
    assert by_alias.status_code == 200
    assert by_alias.json()["data"]["aliases"] == {"name": "one"}
    status = await http.get(f"{BASE}/devices/{DEVICE}", headers=headers)
    assert status.json()["data"]["aliases"] == {"name": "one"}


async def test_attributes_and_inhibition_merge_patch(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    await devices.register("test", DEVICE, "hash", {}, T0)

    patched = await _patch(
        http, headers, {"attributes": {"a": "1", "b": ""}, "credentials_inhibited": True}
    )
    assert patched.status_code == 200
    data = patched.json()["data"]
    assert (data["attributes"], data["credentials_inhibited"]) == ({"a": "1", "b": ""}, True)
    removed = await _patch(http, headers, {"attributes": {"a": None}, "unknown": 1})
    assert removed.json()["data"]["attributes"] == {"b": ""}
    missing = await _patch(http, headers, {"attributes": {"a": None}})
    assert (missing.status_code, _errors(missing)) == (422, {"detail": "Attribute key not found"})
    for bad in ({"": "x"}, {"k": 1}, "k"):
        response = await _patch(http, headers, {"attributes": bad})
        assert (response.status_code, _errors(response)) == (
            400,
            {"detail": "Invalid attributes"},
        ), bad
    inhibited = await _patch(http, headers, {"credentials_inhibited": "yes"})
    assert (inhibited.status_code, _errors(inhibited)) == (
        422,
        {"credentials_inhibited": ["is invalid"]},
    )
    plain_json = await _patch(
        http, headers, {"credentials_inhibited": False}, content_type="application/json"
    )
    assert plain_json.json()["data"]["credentials_inhibited"] is False


async def test_patch_content_type_and_body(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    await devices.register("test", DEVICE, "hash", {}, T0)

    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = await _patch(http, headers, {}, content_type=content_type)
        assert (response.status_code, _errors(response)) == (
            415,
            {"detail": "Unsupported media type"},
        )
    no_type = await http.patch(f"{BASE}/devices/{DEVICE}", content=b"{}", headers=headers)
    assert no_type.status_code == 415
    no_data = await http.patch(
        f"{BASE}/devices/{DEVICE}", content=b'{"aliases": {}}', headers={**headers, **MERGE_PATCH}
    )
    assert (no_data.status_code, _errors(no_data)) == (400, {"detail": "Bad request"})
    charset = await _patch(
        http, headers, {}, content_type="application/merge-patch+json; charset=utf-8"
    )
    assert charset.status_code == 200


async def test_interfaces_and_stats(
    http: httpx.AsyncClient, devices: DeviceRepository, headers: dict[str, str]
) -> None:
    await devices.register("test", DEVICE, "hash", {"org.x.B": (1, 0), "org.x.A": (0, 1)}, T0)
    await devices.register("test", OTHER, "hash", {}, T0)
    await devices.update_aliases("test", DEVICE, {"name": "dev"})
    await devices.mark_connected("test", OTHER, "10.0.0.1", T0)

    listed = await http.get(f"{BASE}/devices/{DEVICE}/interfaces", headers=headers)
    assert listed.json() == {"data": ["org.x.A", "org.x.B"]}
    by_alias = await http.get(f"{BASE}/devices-by-alias/dev/interfaces", headers=headers)
    assert by_alias.json() == listed.json()
    empty = await http.get(f"{BASE}/devices/{OTHER}/interfaces", headers=headers)
    assert empty.json() == {"data": []}
    stats = await http.get(f"{BASE}/stats/devices", headers=headers)
    assert stats.json() == {"data": {"total_devices": 2, "connected_devices": 1}}


async def test_appengine_authorization(
    http: httpx.AsyncClient,
    realm: str,
    realm_keys: KeyPair,
    other_keys: KeyPair,
    housekeeping_keys: KeyPair,
) -> None:
    created = await http.post(
        "/housekeeping/v1/realms",
        json={"data": {"realm_name": "other", "jwt_public_key_pem": other_keys.public_pem}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    assert created.status_code == 201

    foreign = await http.get(f"{BASE}/devices", headers=other_keys.headers("appengine"))
    assert (foreign.status_code, _errors(foreign)) == (401, {"detail": "Invalid JWT token"})
    unknown_realm = await http.get(
        "/appengine/v1/nowhere/devices", headers=realm_keys.headers("appengine")
    )
    assert (unknown_realm.status_code, _errors(unknown_realm)) == (
        401,
        {"detail": "Invalid JWT token"},
    )
    missing = await http.get(f"{BASE}/stats/devices")
    assert (missing.status_code, _errors(missing)) == (
        401,
        {"detail": "Missing authorization token"},
    )
    wrong_claim = await http.get(f"{BASE}/devices", headers=realm_keys.headers("pairing"))
    assert wrong_claim.status_code == 403
    own = await http.get("/appengine/v1/other/devices", headers=other_keys.headers("appengine"))
    assert own.json() == {"links": {"self": "/v1/other/devices"}, "data": []}
