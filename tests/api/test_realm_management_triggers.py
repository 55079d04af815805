"""Realm Management triggers and delivery policies over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import KeyPair, platform_settings

from astraea.platform import Platform

Rm = tuple[str, dict[str, str]]
IFACE = "org.example.Values"
HOOK = {"http_url": "https://example.com/hook", "http_method": "post"}
POLICY = {
    "name": "retry_policy",
    "maximum_capacity": 100,
    "retry_times": 3,
    "error_handlers": [{"on": "server_error", "strategy": "retry"}],
}
POLICY_RENDERED = {
    "name": "retry_policy",
    "maximum_capacity": 100,
    "retry_times": 3,
    "event_ttl": None,
    "prefetch_count": None,
    "error_handlers": [{"on": "server_error", "strategy": "retry"}],
}


@pytest.fixture
def rm(realm: str, realm_keys: KeyPair) -> Rm:
    return f"/realmmanagement/v1/{realm}", realm_keys.headers("realm-management")


def _interface(
    name: str = IFACE, interface_type: str = "datastream", aggregation: str = "individual"
) -> dict[str, Any]:
    return {
        "interface_name": name,
        "version_major": 0,
        "version_minor": 1,
        "type": interface_type,
        "ownership": "device",
        "aggregation": aggregation,
        "mappings": [
            {"endpoint": "/%{sensor}/value", "type": "double"},
            {"endpoint": "/%{sensor}/name", "type": "string"},
        ],
    }


def _data_trigger(interface: str = IFACE, **changes: Any) -> dict[str, Any]:
    simple = {
        "type": "data_trigger",
        "on": "incoming_data",
        "interface_name": interface,
        "interface_major": 0,
        "match_path": "/%{sensor}/value",
        "value_match_operator": ">",
        "known_value": 0.4,
    }
    return simple | changes


def _trigger(name: str = "hot", *simple: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = {"name": name, "action": HOOK, "simple_triggers": list(simple) or [_data_trigger()]}
    return doc | changes


def _connected(name: str = "online", **changes: Any) -> dict[str, Any]:
    simple = {"type": "device_trigger", "on": "device_connected", "device_id": "*"}
    return _trigger(name, simple, **changes)


async def _install(http: httpx.AsyncClient, rm: Rm, kind: str, doc: object) -> httpx.Response:
    base, headers = rm
    return await http.post(f"{base}/{kind}", json={"data": doc}, headers=headers)


async def _install_interface(http: httpx.AsyncClient, rm: Rm, **kwargs: Any) -> None:
    response = await _install(http, rm, "interfaces", _interface(**kwargs))
    assert response.status_code == 201, response.text


def _error(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()["errors"]


async def test_trigger_lifecycle(http: httpx.AsyncClient, rm: Rm) -> None:
    base, headers = rm
    await _install_interface(http, rm)

    installed = await _install(http, rm, "triggers", _trigger())

    assert installed.status_code == 201, installed.text
    assert installed.headers["location"] == "/v1/test/triggers/hot"
    rendered = {
        "name": "hot",
        "action": {**HOOK, "ignore_ssl_errors": False},
        "simple_triggers": [_data_trigger()],
    }
    assert installed.json() == {"data": rendered}
    assert (await http.get(f"{base}/triggers", headers=headers)).json() == {"data": ["hot"]}
    got = await http.get(f"{base}/triggers/hot", headers=headers)
    assert got.status_code == 200 and got.json() == {"data": rendered}

    deleted = await http.delete(f"{base}/triggers/hot", headers=headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await http.get(f"{base}/triggers", headers=headers)).json() == {"data": []}
    missing = await http.get(f"{base}/triggers/hot", headers=headers)
    assert _error(missing, 404) == {"detail": "Trigger not found"}
    again = await http.delete(f"{base}/triggers/hot", headers=headers)
    assert _error(again, 404) == {"detail": "Trigger not found"}


async def test_rendering_is_normalized(http: httpx.AsyncClient, rm: Rm) -> None:
    legacy_action = {"http_post_url": "https://example.com/hook", "template": "{{ realm }}"}
    simple = [
        {"type": "device_trigger", "on": "device_connected", "device_id": "*"},
        {"type": "device_trigger", "on": "device_error", "group_name": "plant"},
        {
            "type": "data_trigger",
            "on": "incoming_data",
            "interface_name": "*",
            "interface_major": 3,
            "match_path": "/*",
            "value_match_operator": "*",
            "known_value": 1,
        },
    ]

    installed = await _install(http, rm, "triggers", _trigger("t", *simple, action=legacy_action))

    assert installed.status_code == 201, installed.text
    assert installed.json()["data"] == {
        "name": "t",
        "action": {
            "http_url": "https://example.com/hook",
            "http_method": "post",
            "ignore_ssl_errors": False,
            "template": "{{ realm }}",
        },
        "simple_triggers": [
            {"type": "device_trigger", "on": "device_connected"},
            {"type": "device_trigger", "on": "device_error", "group_name": "plant"},
            {
                "type": "data_trigger",
                "on": "incoming_data",
                "interface_name": "*",
                "match_path": "/*",
                "value_match_operator": "*",
            },
        ],
    }
    base, headers = rm
    got = await http.get(f"{base}/triggers/t", headers=headers)
    assert got.json() == installed.json()


async def test_names_are_percent_encoded_in_locations(http: httpx.AsyncClient, rm: Rm) -> None:
    base, headers = rm
    policy = await _install(http, rm, "policies", POLICY | {"name": "réessai 2"})
    assert policy.headers["location"] == "/v1/test/policies/r%C3%A9essai%202"
    trigger = await _install(http, rm, "triggers", _connected("température élevée"))
    assert trigger.headers["location"] == "/v1/test/triggers/temp%C3%A9rature%20%C3%A9lev%C3%A9e"

    for location in (policy.headers["location"], trigger.headers["location"]):
        got = await http.get(base + location.removeprefix("/v1/test"), headers=headers)
        assert got.status_code == 200, got.text


async def test_amqp_trigger(http: httpx.AsyncClient, rm: Rm) -> None:
    action = {
        "amqp_exchange": "astarte_events_test_out",
        "amqp_routing_key": "rk",
        "amqp_message_expiration_ms": 1000,
        "amqp_message_persistent": False,
        "amqp_message_priority": 3,
    }
    installed = await _install(http, rm, "triggers", _connected(action=action))
    assert installed.status_code == 201, installed.text
    assert installed.json()["data"]["action"] == action

    wrong_realm = _connected("other", action=action | {"amqp_exchange": "astarte_events_x_out"})
    refused = await _install(http, rm, "triggers", wrong_realm)
    assert _error(refused, 422) == {"action": {"amqp_exchange": ["has invalid format"]}}


async def test_invalid_trigger_is_a_changeset(http: httpx.AsyncClient, rm: Rm) -> None:
    doc = {
        "action": {"http_url": "https://example.com/hook", "http_method": "POST"},
        "simple_triggers": [
            {"type": "device_trigger", "on": "device_connected"},
            {"type": "data_trigger", "interface_name": "*", "on": "value_change"},
            {"type": "device_trigger", "on": "device_error", "device_id": "x", "group_name": "g"},
        ],
        "policy": "@default",
    }

    response = await _install(http, rm, "triggers", doc)

    assert _error(response, 422) == {
        "name": ["can't be blank"],
        "policy": ["has invalid format"],
        "action": {"http_method": ["is invalid"]},
        "simple_triggers": [
            {},
            {
                "on": ["must be incoming_data when interface_name is *"],
                "match_path": ["can't be blank"],
                "value_match_operator": ["can't be blank"],
                "known_value": ["can't be blank"],
            },
            {
                "device_id": ["is not a valid device id"],
                "group_name": ["must not be defined if device_id is defined"],
            },
        ],
    }
    base, headers = rm
    assert (await http.get(f"{base}/triggers", headers=headers)).json() == {"data": []}


@pytest.mark.parametrize(
    "body",
    [b'{"trigger": {}}', b"{not json", b'{"data": ["hot"]}', b'{"data": "hot"}'],
)
async def test_malformed_requests_are_bad_requests(
    http: httpx.AsyncClient, rm: Rm, body: bytes
) -> None:
    base, headers = rm
    for kind in ("triggers", "policies"):
        response = await http.post(
            f"{base}/{kind}", content=body, headers=headers | {"content-type": "application/json"}
        )
        if kind == "policies" and body.startswith(b'{"data"'):
            assert _error(response, 422) == {"detail": "Invalid trigger policy"}
        else:
            assert _error(response, 400) == {"detail": "Bad request"}


async def test_a_taken_trigger_name_conflicts(http: httpx.AsyncClient, rm: Rm) -> None:
    assert (await _install(http, rm, "triggers", _connected())).status_code == 201

    # The name is checked before the interfaces: the interface here is not installed.
    response = await _install(http, rm, "triggers", _trigger("online"))

    assert _error(response, 409) == {"detail": "Trigger already exists"}


async def test_data_triggers_need_their_interface(http: httpx.AsyncClient, rm: Rm) -> None:
    missing = await _install(http, rm, "triggers", _trigger())
    assert _error(missing, 404) == {"detail": "Interface not found"}

    await _install_interface(http, rm)
    wrong_major = await _install(
        http, rm, "triggers", _trigger("t", _data_trigger(interface_major=1))
    )
    assert _error(wrong_major, 404) == {"detail": "Interface not found"}

    device_trigger = {
        "type": "device_trigger",
        "on": "interface_added",
        "interface_name": "org.example.NotInstalled",
        "interface_major": 0,
    }
    assert (await _install(http, rm, "triggers", _trigger("d", device_trigger))).status_code == 201


@pytest.mark.parametrize(
    ("interface", "changes", "detail"),
    [
        ({}, {"on": "value_change"}, "Invalid datastream trigger"),
        ({}, {"on": "path_removed"}, "Invalid datastream trigger"),
        (
            {"interface_type": "properties"},
            {"on": "value_change_applied", "match_path": "/*", "value_match_operator": "*"},
            "Unsupported trigger type",
        ),
        ({"aggregation": "object"}, {}, "Invalid object aggregation trigger"),
        (
            {"aggregation": "object"},
            {"on": "value_stored", "match_path": "/*", "value_match_operator": "*"},
            "Invalid object aggregation trigger",
        ),
    ],
)
async def test_triggers_the_interface_cannot_serve(
    http: httpx.AsyncClient,
    rm: Rm,
    interface: dict[str, Any],
    changes: dict[str, Any],
    detail: str,
) -> None:
    await _install_interface(http, rm, **interface)

    response = await _install(http, rm, "triggers", _trigger("t", _data_trigger(**changes)))

    assert _error(response, 400) == {"detail": detail}


@pytest.mark.parametrize(
    ("interface", "changes"),
    [
        ({"interface_type": "properties"}, {"on": "value_change"}),
        ({"interface_type": "properties"}, {"on": "path_removed", "value_match_operator": "*"}),
        ({}, {"on": "path_created", "match_path": "/*", "value_match_operator": "*"}),
        ({"aggregation": "object"}, {"match_path": "/*", "value_match_operator": "*"}),
    ],
)
async def test_triggers_the_interface_can_serve(
    http: httpx.AsyncClient, rm: Rm, interface: dict[str, Any], changes: dict[str, Any]
) -> None:
    await _install_interface(http, rm, **interface)

    response = await _install(http, rm, "triggers", _trigger("t", _data_trigger(**changes)))

    assert response.status_code == 201, response.text


async def test_policy_lifecycle(http: httpx.AsyncClient, rm: Rm) -> None:
    base, headers = rm

    installed = await _install(http, rm, "policies", POLICY)

    assert installed.status_code == 201, installed.text
    assert installed.headers["location"] == "/v1/test/policies/retry_policy"
    assert installed.json() == {"data": POLICY_RENDERED}
    assert (await http.get(f"{base}/policies", headers=headers)).json() == {
        "data": ["retry_policy"]
    }
    got = await http.get(f"{base}/policies/retry_policy", headers=headers)
    assert got.status_code == 200 and got.json() == {"data": POLICY_RENDERED}

    taken = await _install(http, rm, "policies", POLICY)
    assert _error(taken, 409) == {"detail": "Policy already exists"}

    deleted = await http.delete(
        f"{base}/policies/retry_policy", params={"async_operation": "false"}, headers=headers
    )
    assert deleted.status_code == 204 and deleted.content == b""
    for response in (
        await http.get(f"{base}/policies/retry_policy", headers=headers),
        await http.delete(f"{base}/policies/retry_policy", headers=headers),
    ):
        assert _error(response, 404) == {"detail": "Trigger policy not found"}
    assert (await http.get(f"{base}/policies", headers=headers)).json() == {"data": []}


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "@default"},
        {"name": ...},
        {"maximum_capacity": 0},
        {"retry_times": ...},
        {"error_handlers": []},
        {"error_handlers": [{"on": "any_error"}, {"on": [500]}]},
        {"event_ttl": 86_401},
        {"prefetch_count": 301},
    ],
)
async def test_invalid_policy(http: httpx.AsyncClient, rm: Rm, changes: dict[str, Any]) -> None:
    doc = {key: value for key, value in (POLICY | changes).items() if value is not ...}

    response = await _install(http, rm, "policies", doc)

    assert _error(response, 422) == {"detail": "Invalid trigger policy"}


async def test_triggers_and_their_policy(http: httpx.AsyncClient, rm: Rm) -> None:
    base, headers = rm
    missing = await _install(http, rm, "triggers", _connected(policy="retry_policy"))
    assert _error(missing, 404) == {"detail": "Trigger policy not found"}

    assert (await _install(http, rm, "policies", POLICY)).status_code == 201
    installed = await _install(http, rm, "triggers", _connected(policy="retry_policy"))
    assert installed.status_code == 201, installed.text
    assert installed.json()["data"]["policy"] == "retry_policy"
    got = await http.get(f"{base}/triggers/online", headers=headers)
    assert got.json()["data"]["policy"] == "retry_policy"

    in_use = await http.delete(f"{base}/policies/retry_policy", headers=headers)
    assert _error(in_use, 409) == {
        "detail": "Cannot delete policy as it is being currently used by triggers"
    }
    assert (await http.get(f"{base}/policies/retry_policy", headers=headers)).status_code == 200

    assert (await http.delete(f"{base}/triggers/online", headers=headers)).status_code == 204
    assert (await http.delete(f"{base}/policies/retry_policy", headers=headers)).status_code == 204


async def test_an_interface_used_by_a_trigger_cannot_be_deleted(
    http: httpx.AsyncClient, rm: Rm
) -> None:
    base, headers = rm
    await _install_interface(http, rm)
    assert (await _install(http, rm, "triggers", _trigger())).status_code == 201
    interface_url = f"{base}/interfaces/{IFACE}/0"

    refused = await http.delete(interface_url, headers=headers)
    assert _error(refused, 403) == {
        "detail": "Interface can't be deleted since it's currently used"
    }

    assert (await http.delete(f"{base}/triggers/hot", headers=headers)).status_code == 204
    assert (await http.delete(interface_url, headers=headers)).status_code == 204


async def test_routes_need_authorization(
    http: httpx.AsyncClient, rm: Rm, other_keys: KeyPair
) -> None:
    base, _ = rm
    wrong_key = other_keys.headers("realm-management")
    requests = [
        ("GET", "triggers"),
        ("POST", "triggers"),
        ("GET", "triggers/t"),
        ("DELETE", "triggers/t"),
        ("GET", "policies"),
        ("POST", "policies"),
        ("GET", "policies/p"),
        ("DELETE", "policies/p"),
    ]
    for method, path in requests:
        anonymous = await http.request(method, f"{base}/{path}", json={"data": {}})
        assert _error(anonymous, 401) == {"detail": "Missing authorization token"}
        forged = await http.request(method, f"{base}/{path}", json={"data": {}}, headers=wrong_key)
        assert _error(forged, 401) == {"detail": "Invalid JWT token"}
        unknown_realm = await http.request(method, f"/realmmanagement/v1/nope/{path}")
        assert _error(unknown_realm, 403) == {"detail": "Forbidden"}


async def test_triggers_and_policies_survive_a_restart(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    settings = platform_settings(tmp_path / "data", housekeeping_keys)
    rm: Rm = ("/realmmanagement/v1/test", realm_keys.headers("realm-management"))
    first = Platform(settings)
    await first.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}") as http:
            realm = await http.post(
                "/housekeeping/v1/realms",
                json={"data": {"realm_name": "test", "jwt_public_key_pem": realm_keys.public_pem}},
                headers=housekeeping_keys.headers("housekeeping"),
            )
            assert realm.status_code == 201, realm.text
            assert (await _install(http, rm, "policies", POLICY)).status_code == 201
            installed = await _install(http, rm, "triggers", _connected(policy="retry_policy"))
            assert installed.status_code == 201, installed.text
    finally:
        await first.stop()

    second = Platform(settings)
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.http_port}") as http:
            base, headers = rm
            trigger = await http.get(f"{base}/triggers/online", headers=headers)
            assert trigger.json() == installed.json()
            policy = await http.get(f"{base}/policies/retry_policy", headers=headers)
            assert policy.json() == {"data": POLICY_RENDERED}
    finally:
        await second.stop()
