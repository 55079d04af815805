"""AppEngine writes to server-owned interfaces (PUT/POST) and property unsets (DELETE), over
real HTTP against a running platform; device publishes go to a recording transport."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import bson
import httpx
import pytest
from appengine_values_support import (
    ALIAS,
    BARE,
    BASE,
    DEVICE,
    DEVICE_OBJECT,
    DEVICE_PROPS,
    DEVICE_STREAM,
    REALM,
    SERVER_OBJECT,
    SERVER_PROPS,
    SERVER_STREAM,
    STALE,
    Env,
    add_to_group,
    arrange,
    errors,
)
from bson.codec_options import CodecOptions
from tests.conftest import KeyPair

from astraea.bus.device_commands import DeviceCommands
from astraea.core.interface import Aggregation
from astraea.platform import Platform

DECODE: CodecOptions[dict[str, object]] = CodecOptions(tz_aware=True, tzinfo=UTC)
BSON_DOUBLE, BSON_INT64 = 0x01, 0x12


@pytest.fixture
async def env(platform: Platform, realm: str, realm_keys: KeyPair) -> Env:
    return await arrange(platform, realm_keys.headers("appengine"))


def url(interface: str, path: str = "", device: str = DEVICE) -> str:
    return f"{BASE}/devices/{device}/interfaces/{interface}{path}"


async def put(http: httpx.AsyncClient, env: Env, target: str, value: object) -> httpx.Response:
    return await http.put(target, json={"data": value}, headers=env.headers)


def sent(env: Env) -> list[tuple[str, object, int]]:
    """(topic, decoded `v`, qos) of every publish, in order."""
    return [
        (topic, bson.decode(payload, DECODE)["v"] if payload else None, qos)
        for _, _, topic, payload, qos in env.commands.published
    ]


def first_element_type(payload: bytes) -> int:
    return payload[4]


# --- properties ----------------------------------------------------------------------------


async def test_property_write_publishes_then_stores_and_echoes_the_request(
    http: httpx.AsyncClient, env: Env
) -> None:
    response = await put(http, env, url(SERVER_PROPS, "/rooms/kitchen/temp"), 21)

    assert response.status_code == 200
    assert response.json() == {"data": 21}
    [(realm, device, topic, payload, qos)] = env.commands.published
    assert (realm, device, qos) == (REALM, DEVICE, 2)
    assert topic == f"{REALM}/{DEVICE}/{SERVER_PROPS}/rooms/kitchen/temp"
    assert first_element_type(payload) == BSON_DOUBLE  # an integral JSON number stays a double
    assert bson.decode(payload) == {"v": 21.0}
    [stored] = await env.properties(SERVER_PROPS)
    assert (stored.path, stored.value) == ("/rooms/kitchen/temp", 21.0)


async def test_post_writes_like_put(http: httpx.AsyncClient, env: Env) -> None:
    response = await http.post(
        url(SERVER_PROPS, "/rooms/hall/name"), json={"data": "Hall"}, headers=env.headers
    )

    assert response.status_code == 200
    assert response.json() == {"data": "Hall"}
    assert sent(env) == [(f"{REALM}/{DEVICE}/{SERVER_PROPS}/rooms/hall/name", "Hall", 2)]


async def test_property_write_succeeds_without_a_device_session(
    http: httpx.AsyncClient, env: Env
) -> None:
    env.commands.delivered = False

    response = await put(http, env, url(SERVER_PROPS, "/count"), 5)

    assert response.status_code == 200
    assert [(p.path, p.value) for p in await env.properties(SERVER_PROPS)] == [("/count", 5)]


@pytest.mark.parametrize(
    "device_ref",
    [f"devices/{DEVICE}", f"devices-by-alias/{ALIAS}", f"groups/g1/devices/{DEVICE}"],
)
async def test_every_device_reference_serves_every_method(
    http: httpx.AsyncClient, env: Env, device_ref: str
) -> None:
    add_to_group(env.platform, DEVICE, "g1")
    root = f"{BASE}/{device_ref}/interfaces/{SERVER_PROPS}"

    put_response = await http.put(f"{root}/big", json={"data": 3}, headers=env.headers)
    post_response = await http.post(f"{root}/count", json={"data": 4}, headers=env.headers)
    read_path = await http.get(f"{root}/big", headers=env.headers)
    read_root = await http.get(root, headers=env.headers)
    unset = await http.delete(f"{root}/big", headers=env.headers)

    assert (put_response.status_code, post_response.status_code) == (200, 200)
    assert read_path.json() == {"data": 3}
    assert read_root.json() == {"data": {"big": 3, "count": 4}}
    assert unset.status_code == 204
    assert [topic for _, _, topic, _, _ in env.commands.published] == [
        f"{REALM}/{DEVICE}/{SERVER_PROPS}/big",
        f"{REALM}/{DEVICE}/{SERVER_PROPS}/count",
        f"{REALM}/{DEVICE}/{SERVER_PROPS}/big",
    ]


@pytest.mark.parametrize(
    ("path", "value", "published", "stored"),
    [
        ("/big", "9223372036854775807", 2**63 - 1, 2**63 - 1),
        ("/big", -5, -5, -5),
        (
            "/when",
            "2024-05-01T12:00:00.123456+02:00",
            datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
            datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
        ),
        ("/when", 1000, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), None),
        ("/blob", base64.b64encode(b"\x00\xffhi").decode(), b"\x00\xffhi", b"\x00\xffhi"),
        ("/list", [1, -2, 3], [1, -2, 3], [1, -2, 3]),
        ("/list", [], [], []),
    ],
)
async def test_values_are_cast_from_json(
    http: httpx.AsyncClient,
    env: Env,
    path: str,
    value: object,
    published: object,
    stored: object,
) -> None:
    response = await put(http, env, url(SERVER_PROPS, path), value)

    assert response.status_code == 200
    assert response.json() == {"data": value}
    assert sent(env) == [(f"{REALM}/{DEVICE}/{SERVER_PROPS}{path}", published, 2)]
    [prop] = await env.properties(SERVER_PROPS)
    assert prop.value == (published if stored is None else stored)


async def test_longinteger_beyond_int32_is_published_as_int64(
    http: httpx.AsyncClient, env: Env
) -> None:
    await put(http, env, url(SERVER_PROPS, "/big"), 2**40)

    [(_, _, _, payload, _)] = env.commands.published
    assert first_element_type(payload) == BSON_INT64


async def test_binary_blob_is_published_as_generic_binary(
    http: httpx.AsyncClient, env: Env
) -> None:
    await put(http, env, url(SERVER_PROPS, "/blob"), base64.b64encode(b"abc").decode())

    [(_, _, _, payload, _)] = env.commands.published
    # type 0x05, name "v", length 3, subtype 0x00
    assert payload[4:12] == b"\x05v\x00\x03\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("path", "value", "expected_type"),
    [
        ("/rooms/kitchen/temp", "21", "double"),
        ("/rooms/kitchen/temp", True, "double"),
        ("/rooms/kitchen/temp", None, "double"),
        ("/rooms/kitchen/name", 5, "string"),
        ("/count", 2**31, "integer"),
        ("/count", 1.5, "integer"),
        ("/big", 2**63, "longinteger"),
        ("/big", "12a", "longinteger"),
        ("/blob", "not base64!", "binaryblob"),
        ("/blob", 5, "binaryblob"),
        ("/when", "yesterday", "datetime"),
        ("/when", "2024-05-01T12:00:00", "datetime"),
        ("/list", [1, "2"], "integerarray"),
        ("/list", 1, "integerarray"),
    ],
)
async def test_wrong_value_types_are_422_with_the_expected_type(
    http: httpx.AsyncClient, env: Env, path: str, value: object, expected_type: str
) -> None:
    response = await put(http, env, url(SERVER_PROPS, path), value)

    assert response.status_code == 422
    assert errors(response) == {"detail": "Unexpected value type", "expected_type": expected_type}
    assert env.commands.published == []
    assert await env.properties(SERVER_PROPS) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/text", "x" * 65_537),
        ("/text", "é" * 32_769),  # 65 538 bytes of UTF-8
        ("/blob", base64.b64encode(bytes(65_537)).decode()),
        ("/list", list(range(1025))),
        # Within the string limit, but the message would exceed what MQTT carries.
        ("/text", "x" * 65_530),
    ],
)
async def test_oversized_values_are_422(
    http: httpx.AsyncClient, env: Env, path: str, value: object
) -> None:
    response = await put(http, env, url(SERVER_PROPS, path), value)

    assert response.status_code == 422
    assert errors(response) == {"detail": "Value size exceeds size limits"}
    assert env.commands.published == []
    assert await env.properties(SERVER_PROPS) == []


# --- datastreams ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "qos"),
    [("/unreliable", 1.5, 0), ("/guaranteed", 7, 1), ("/unique", "go", 2)],
)
async def test_datastream_write_publishes_with_the_mapping_qos_and_stores_a_sample(
    http: httpx.AsyncClient, env: Env, path: str, value: object, qos: int
) -> None:
    before = datetime.now(UTC)

    response = await put(http, env, url(SERVER_STREAM, path), value)

    assert response.status_code == 200
    assert response.json() == {"data": value}
    assert response.headers["astraea-delivery"] == "delivered"
    assert sent(env) == [(f"{REALM}/{DEVICE}/{SERVER_STREAM}{path}", value, qos)]
    [sample] = await env.samples(SERVER_STREAM, path)
    assert sample.value == value
    assert sample.value_timestamp == sample.reception_timestamp
    assert before <= sample.value_timestamp <= datetime.now(UTC)
    listed = await http.get(url(SERVER_STREAM), headers=env.headers)
    assert list(listed.json()["data"]) == [path[1:]]


@pytest.mark.parametrize(("path", "value"), [("/guaranteed", 7), ("/unique", "go")])
async def test_reliable_datastream_without_a_device_session_is_503_and_not_stored(
    http: httpx.AsyncClient, env: Env, path: str, value: object
) -> None:
    env.commands.delivered = False

    response = await put(http, env, url(SERVER_STREAM, path), value)

    assert response.status_code == 503
    assert errors(response) == {"detail": "Cannot push to device"}
    assert await env.samples(SERVER_STREAM, path) == []


async def test_unreliable_datastream_is_stored_without_a_device_session(
    http: httpx.AsyncClient, env: Env
) -> None:
    env.commands.delivered = False

    response = await put(http, env, url(SERVER_STREAM, "/unreliable"), 2)

    assert response.status_code == 200
    assert response.headers["astraea-delivery"] == "dropped"  # Astarte answers 200 all the same
    assert [s.value for s in await env.samples(SERVER_STREAM, "/unreliable")] == [2.0]


async def test_a_device_never_connected_is_reached_by_nothing(
    http: httpx.AsyncClient, env: Env
) -> None:
    """The platform's own commands: no node holds the device and it has no stored session."""
    context = env.platform.api_context
    assert context is not None and env.platform.bus is not None and env.storage is not None
    context.commands = DeviceCommands(env.platform.bus, env.storage.sessions, max_queued=10)

    response = await put(http, env, url(SERVER_PROPS, "/count"), 1)
    assert (response.status_code, response.headers["astraea-delivery"]) == (200, "pending")
    response = await put(http, env, url(SERVER_STREAM, "/unreliable"), 1)
    assert (response.status_code, response.headers["astraea-delivery"]) == (200, "dropped")
    assert (await put(http, env, url(SERVER_STREAM, "/guaranteed"), 1)).status_code == 503


async def expiry(env: Env, path: str) -> timedelta | None:
    """How long after its reception a stored sample expires, read from storage: the sample
    is gone when read just past that time."""
    [sample] = await env.samples(SERVER_STREAM, path)
    values = env.storage.values
    for seconds in (59, 60, 61, 3599, 3600, 3601):
        later = sample.reception_timestamp + timedelta(seconds=seconds)
        found = await values.samples(
            REALM, DEVICE, SERVER_STREAM, 1, path, Aggregation.INDIVIDUAL, now=later
        )
        if not found:
            return timedelta(seconds=seconds)
    return None


@pytest.mark.parametrize(
    ("realm_maximum", "path", "expected"),
    [
        (None, "/unreliable", None),
        (None, "/ttl", timedelta(seconds=3600)),
        (60, "/unreliable", timedelta(seconds=60)),
        (60, "/ttl", timedelta(seconds=60)),
    ],
)
async def test_datastream_samples_expire_after_the_shortest_retention(
    http: httpx.AsyncClient,
    env: Env,
    realm_maximum: int | None,
    path: str,
    expected: timedelta | None,
) -> None:
    realm = await env.storage.realms.get(REALM)
    assert realm is not None
    realm.datastream_maximum_storage_retention = realm_maximum
    await env.storage.realms.update(realm)

    assert (await put(http, env, url(SERVER_STREAM, path), 1.0)).status_code == 200

    assert await expiry(env, path) == expected


# --- object aggregates ---------------------------------------------------------------------


async def test_object_write_publishes_the_object_at_its_parent_path(
    http: httpx.AsyncClient, env: Env
) -> None:
    value = {"temp": 20, "count": "9007199254740993"}

    response = await put(http, env, url(SERVER_OBJECT, "/kitchen"), value)

    assert response.status_code == 200
    assert response.json() == {"data": value}
    published = {"temp": 20.0, "count": 9007199254740993}
    assert sent(env) == [(f"{REALM}/{DEVICE}/{SERVER_OBJECT}/kitchen", published, 0)]
    [sample] = await env.samples(SERVER_OBJECT, "/kitchen", Aggregation.OBJECT)
    assert sample.value == published


@pytest.mark.parametrize(
    ("value", "status", "error"),
    [
        ({"temp": 1, "wind": 2}, 400, {"detail": "Unexpected object key"}),
        ({"hum": 1}, 422, {"detail": "Missing required mapping key"}),
        (5, 422, {"detail": "Unexpected value type", "expected_type": "object"}),
        ([1], 422, {"detail": "Unexpected value type", "expected_type": "object"}),
        (
            {"temp": "hot"},
            422,
            {"detail": "Unexpected value type", "expected_type": "double"},
        ),
        (
            {"temp": 1, "count": 2**63},
            422,
            {"detail": "Unexpected value type", "expected_type": "longinteger"},
        ),
    ],
)
async def test_invalid_objects_are_rejected_and_not_stored(
    http: httpx.AsyncClient, env: Env, value: object, status: int, error: object
) -> None:
    response = await put(http, env, url(SERVER_OBJECT, "/kitchen"), value)

    assert response.status_code == status
    assert errors(response) == error
    assert env.commands.published == []
    assert await env.samples(SERVER_OBJECT, "/kitchen", Aggregation.OBJECT) == []


@pytest.mark.parametrize("path", ["", "/kitchen/temp", "/a/b/c", "/kitchen//x"])
async def test_objects_are_written_only_at_their_parent_path(
    http: httpx.AsyncClient, env: Env, path: str
) -> None:
    response = await put(http, env, url(SERVER_OBJECT, path), {"temp": 1})

    assert response.status_code == 404
    assert errors(response) == {"detail": "Mapping not found"}


# --- refused writes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interface", "path"),
    [
        (DEVICE_PROPS, "/s1/enabled"),
        (DEVICE_STREAM, "/sensors/s1/value"),
        (DEVICE_OBJECT, "/kitchen"),
    ],
)
async def test_device_owned_interfaces_are_not_writable(
    http: httpx.AsyncClient, env: Env, interface: str, path: str
) -> None:
    response = await put(http, env, url(interface, path), True)

    assert response.status_code == 405
    assert errors(response) == {"detail": "Cannot write to device owned resource"}
    assert (await http.delete(url(interface, path), headers=env.headers)).status_code == 405


@pytest.mark.parametrize(
    ("interface", "path"),
    [(SERVER_PROPS, ""), (SERVER_PROPS, "/rooms/kitchen"), (SERVER_STREAM, "/levels")],
)
async def test_partial_paths_are_read_only(
    http: httpx.AsyncClient, env: Env, interface: str, path: str
) -> None:
    response = await put(http, env, url(interface, path), 1)

    assert response.status_code == 405
    assert errors(response) == {"detail": "Cannot write to read-only resource"}


@pytest.mark.parametrize(
    "path", ["/nope", "/rooms/kitchen/temp/more", "/rooms//temp", "/rooms/a+b/temp"]
)
async def test_unknown_paths_are_400(http: httpx.AsyncClient, env: Env, path: str) -> None:
    response = await put(http, env, url(SERVER_PROPS, path), 1)

    assert response.status_code == 400
    assert errors(response) == {"detail": "Endpoint not found"}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"value": 1}', b"[1]", b'"data"', b""],
)
async def test_malformed_bodies_are_400(http: httpx.AsyncClient, env: Env, body: bytes) -> None:
    response = await http.put(
        url(SERVER_PROPS, "/count"),
        content=body,
        headers={**env.headers, "content-type": "application/json"},
    )

    assert response.status_code == 400
    assert errors(response) == {"detail": "Bad request"}


@pytest.mark.parametrize(
    ("target", "status", "detail"),
    [
        (url("org.astraea.test.Missing", "/x"), 404, "Interface not found in device introspection"),
        (
            url(SERVER_PROPS, "/count", device=BARE),
            404,
            "Interface not found in device introspection",
        ),
        (url(SERVER_PROPS, "/count", device=STALE), 404, "Interface not found"),
        (url(SERVER_PROPS, "/count", device="AAAAAAAAAAAAAAAAAAAAAA"), 404, "Device not found"),
        (url(SERVER_PROPS, "/count", device="not-a-device"), 400, "Bad request"),
        (
            f"{BASE}/devices-by-alias/nobody/interfaces/{SERVER_PROPS}/count",
            404,
            "Device not found",
        ),
        (
            f"{BASE}/groups/g1/devices/{DEVICE}/interfaces/{SERVER_PROPS}/count",
            404,
            "Device not found",
        ),
    ],
)
async def test_unknown_targets(
    http: httpx.AsyncClient, env: Env, target: str, status: int, detail: str
) -> None:
    for response in (
        await http.put(target, json={"data": 1}, headers=env.headers),
        await http.get(target, headers=env.headers),
        await http.delete(target, headers=env.headers),
    ):
        assert response.status_code == status
        assert errors(response) == {"detail": detail}
    assert env.commands.published == []


@pytest.mark.parametrize(("group", "in_url"), [("g1", "g1"), ("a/b", "a%252Fb")])
async def test_values_of_a_group_member(
    http: httpx.AsyncClient, env: Env, group: str, in_url: str
) -> None:
    add_to_group(env.platform, DEVICE, group)
    target = f"{BASE}/groups/{in_url}/devices/{DEVICE}/interfaces/{SERVER_PROPS}/big"

    written = await http.put(target, json={"data": 7}, headers=env.headers)
    read = await http.get(target, headers=env.headers)
    unset = await http.delete(target, headers=env.headers)

    assert (written.status_code, read.json(), unset.status_code) == (200, {"data": 7}, 204)
    outside = await http.get(
        f"{BASE}/groups/other/devices/{DEVICE}/interfaces/{SERVER_PROPS}/big", headers=env.headers
    )
    assert outside.status_code == 404


async def test_another_realms_token_is_401(
    http: httpx.AsyncClient, env: Env, other_keys: KeyPair
) -> None:
    target = url(SERVER_PROPS, "/count")
    headers = other_keys.headers("appengine")

    for response in (
        await http.put(target, json={"data": 1}, headers=headers),
        await http.get(target, headers=headers),
        await http.delete(target, headers=headers),
    ):
        assert response.status_code == 401
        assert errors(response) == {"detail": "Invalid JWT token"}
    assert await env.properties(SERVER_PROPS) == []


async def test_a_token_without_the_path_is_403(
    http: httpx.AsyncClient, env: Env, realm_keys: KeyPair
) -> None:
    headers = realm_keys.headers("appengine", claims=["GET::devices/.*"])

    allowed = await http.get(url(SERVER_PROPS, "/count"), headers=headers)
    refused = await http.put(url(SERVER_PROPS, "/count"), json={"data": 1}, headers=headers)

    assert allowed.status_code == 200
    assert refused.status_code == 403


# --- unset ---------------------------------------------------------------------------------


async def test_delete_unsets_the_property_and_tells_the_device(
    http: httpx.AsyncClient, env: Env
) -> None:
    await put(http, env, url(SERVER_PROPS, "/rooms/kitchen/temp"), 21.5)
    env.commands.published.clear()

    response = await http.delete(url(SERVER_PROPS, "/rooms/kitchen/temp"), headers=env.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert env.commands.published == [
        (REALM, DEVICE, f"{REALM}/{DEVICE}/{SERVER_PROPS}/rooms/kitchen/temp", b"", 2)
    ]
    assert await env.properties(SERVER_PROPS) == []
    assert (await http.get(url(SERVER_PROPS), headers=env.headers)).json() == {"data": {}}


async def test_delete_succeeds_without_a_device_session(http: httpx.AsyncClient, env: Env) -> None:
    await env.set_property(SERVER_PROPS, "/big", 5)
    env.commands.delivered = False

    response = await http.delete(
        f"{BASE}/devices-by-alias/{ALIAS}/interfaces/{SERVER_PROPS}/big", headers=env.headers
    )

    assert response.status_code == 204
    assert await env.properties(SERVER_PROPS) == []


async def test_delete_of_a_mapping_without_allow_unset_is_422(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.set_property(SERVER_PROPS, "/count", 5)

    response = await http.delete(url(SERVER_PROPS, "/count"), headers=env.headers)

    assert response.status_code == 422
    assert errors(response) == {"detail": "Unset not allowed"}
    assert [p.value for p in await env.properties(SERVER_PROPS)] == [5]
    assert env.commands.published == []


@pytest.mark.parametrize(
    ("interface", "path", "status", "detail"),
    [
        (SERVER_PROPS, "/rooms/kitchen", 405, "Cannot write to read-only resource"),
        (SERVER_PROPS, "/nope", 400, "Endpoint not found"),
        (SERVER_STREAM, "/unreliable", 405, "Method not allowed"),
        (SERVER_OBJECT, "/kitchen", 405, "Method not allowed"),
    ],
)
async def test_delete_refusals(
    http: httpx.AsyncClient, env: Env, interface: str, path: str, status: int, detail: str
) -> None:
    response = await http.delete(url(interface, path), headers=env.headers)

    assert response.status_code == status
    assert errors(response) == {"detail": detail}
    assert env.commands.published == []
