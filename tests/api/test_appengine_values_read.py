"""AppEngine reads of interface values (GET): shapes, query options, ordering, rendering and
paging, over real HTTP; values are arranged through the storage API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from appengine_values_support import (
    ALIAS,
    BASE,
    DEVICE,
    DEVICE_OBJECT,
    DEVICE_PROPS,
    DEVICE_STREAM,
    REALM,
    ROOT_OBJECT,
    SERVER_PROPS,
    T0,
    Env,
    arrange,
    errors,
)
from tests.conftest import KeyPair

from astraea.core.interface import Aggregation
from astraea.platform import Platform
from astraea.storage.base import DatastreamSample

OBJ = Aggregation.OBJECT
BIG = 2**60 + 1
SAFE_MAX = 2**52 - 1


@pytest.fixture
async def env(platform: Platform, realm: str, realm_keys: KeyPair) -> Env:
    return await arrange(platform, realm_keys.headers("appengine"))


async def get(
    http: httpx.AsyncClient, env: Env, interface: str, path: str = "", **params: Any
) -> httpx.Response:
    return await http.get(
        f"{BASE}/devices/{DEVICE}/interfaces/{interface}{path}", params=params, headers=env.headers
    )


async def data(
    http: httpx.AsyncClient, env: Env, interface: str, path: str = "", **params: Any
) -> Any:
    response = await get(http, env, interface, path, **params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def iso(seconds: float) -> str:
    moment = T0 + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- properties ----------------------------------------------------------------------------


async def test_properties_render_as_trees_values_and_subtrees(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.set_property(DEVICE_PROPS, "/s1/enabled", True)
    await env.set_property(DEVICE_PROPS, "/s1/big", 5)
    await env.set_property(DEVICE_PROPS, "/s2/enabled", False)
    await env.set_property(DEVICE_PROPS, "/config/when", T0)
    await env.set_property(DEVICE_PROPS, "/config/blob", b"\x00\x01")

    assert await data(http, env, DEVICE_PROPS) == {
        "s1": {"enabled": True, "big": 5},
        "s2": {"enabled": False},
        "config": {"when": "2024-05-01T12:00:00.000Z", "blob": "AAE="},
    }
    assert await data(http, env, DEVICE_PROPS, "/s1") == {"enabled": True, "big": 5}
    assert await data(http, env, DEVICE_PROPS, "/s1/enabled") is True
    assert await data(http, env, DEVICE_PROPS, "/config/when") == "2024-05-01T12:00:00.000Z"


async def test_a_full_path_is_not_a_prefix_of_longer_tokens(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.set_property(DEVICE_PROPS, "/s11/enabled", True)

    assert await data(http, env, DEVICE_PROPS, "/s1") == {}
    assert await data(http, env, DEVICE_PROPS, "/s1/enabled") == {}


async def test_unset_properties_read_as_empty_objects(http: httpx.AsyncClient, env: Env) -> None:
    assert await data(http, env, SERVER_PROPS) == {}
    assert await data(http, env, SERVER_PROPS, "/count") == {}
    assert await data(http, env, SERVER_PROPS, "/rooms/kitchen") == {}


async def test_properties_ignore_datastream_options(http: httpx.AsyncClient, env: Env) -> None:
    await env.set_property(DEVICE_PROPS, "/config/when", T0)

    assert await data(
        http, env, DEVICE_PROPS, "/config/when", keep_milliseconds="true", limit=1
    ) == ("2024-05-01T12:00:00.000Z")


@pytest.mark.parametrize(
    ("params", "small", "big"),
    [
        ({}, 5, BIG),
        ({"allow_bigintegers": "true"}, 5, BIG),
        ({"allow_bigintegers": "false"}, "5", str(BIG)),
        ({"allow_safe_bigintegers": "true"}, 5, str(BIG)),
        ({"allow_bigintegers": "true", "allow_safe_bigintegers": "true"}, 5, BIG),
        ({"allow_bigintegers": "false", "allow_safe_bigintegers": "true"}, 5, str(BIG)),
    ],
)
async def test_property_longintegers_follow_the_biginteger_flags(
    http: httpx.AsyncClient, env: Env, params: dict[str, str], small: object, big: object
) -> None:
    await env.set_property(DEVICE_PROPS, "/s1/big", 5)
    await env.set_property(DEVICE_PROPS, "/s2/big", BIG)

    tree = await data(http, env, DEVICE_PROPS, **params)

    assert tree == {"s1": {"big": small}, "s2": {"big": big}}


async def test_safe_biginteger_bound_is_two_to_the_52_minus_one(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.set_property(DEVICE_PROPS, "/s1/big", SAFE_MAX)
    await env.set_property(DEVICE_PROPS, "/s2/big", -(SAFE_MAX + 1))

    tree = await data(http, env, DEVICE_PROPS, allow_safe_bigintegers="1")

    assert tree == {"s1": {"big": SAFE_MAX}, "s2": {"big": str(-(SAFE_MAX + 1))}}


async def test_reads_by_alias(http: httpx.AsyncClient, env: Env) -> None:
    await env.set_property(DEVICE_PROPS, "/s1/enabled", True)

    response = await http.get(
        f"{BASE}/devices-by-alias/{ALIAS}/interfaces/{DEVICE_PROPS}/s1", headers=env.headers
    )

    assert response.json() == {"data": {"enabled": True}}


@pytest.mark.parametrize(
    "path", ["/s1/nope", "/s1/enabled/more", "/s1//enabled", "/config/x", "/a+b"]
)
async def test_unknown_paths_are_400(http: httpx.AsyncClient, env: Env, path: str) -> None:
    response = await get(http, env, DEVICE_PROPS, path)

    assert response.status_code == 400
    assert errors(response) == {"detail": "Endpoint not found"}


# --- individual datastreams ----------------------------------------------------------------


async def test_samples_of_a_path_oldest_first(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.5, 2, 3])

    assert await data(http, env, DEVICE_STREAM, "/sensors/s1/value") == [
        {"timestamp": iso(0), "value": 1.5},
        {"timestamp": iso(1), "value": 2.0},
        {"timestamp": iso(2), "value": 3.0},
    ]


async def test_a_path_without_samples_is_404(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.0])

    for path in ("/sensors/s2/value", "/big", "/sensors/s2"):
        response = await get(http, env, DEVICE_STREAM, path)
        assert response.status_code == 404
        assert errors(response) == {"detail": "Path not found"}


async def test_root_and_partial_paths_give_the_last_sample_of_each_path(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.0, 2.0])
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/label", ["a"])
    await env.add_samples(DEVICE_STREAM, "/big", [BIG], start=T0 + timedelta(seconds=5))

    def last(value: object, seconds: float) -> dict[str, object]:
        return {
            "value": value,
            "timestamp": iso(seconds),
            "reception_timestamp": iso(seconds + 0.001),
        }

    assert await data(http, env, DEVICE_STREAM) == {
        "sensors": {"s1": {"value": last(2.0, 1), "label": last("a", 0)}},
        "big": last(BIG, 5),
    }
    assert await data(http, env, DEVICE_STREAM, "/sensors/s1") == {
        "value": last(2.0, 1),
        "label": last("a", 0),
    }
    assert await data(http, env, DEVICE_STREAM, allow_bigintegers="false") == {
        "sensors": {"s1": {"value": last(2.0, 1), "label": last("a", 0)}},
        "big": last(str(BIG), 5),
    }


async def test_root_without_samples_is_empty(http: httpx.AsyncClient, env: Env) -> None:
    assert await data(http, env, DEVICE_STREAM) == {}


async def test_sample_lists_render_longintegers_as_strings_blobs_and_datetimes(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/big", [5, BIG])
    await env.add_samples(DEVICE_STREAM, "/blob", [b"hi"])
    await env.add_samples(DEVICE_STREAM, "/when", [T0 + timedelta(milliseconds=1)])

    big = await data(http, env, DEVICE_STREAM, "/big", allow_bigintegers="true")
    assert [s["value"] for s in big] == ["5", str(BIG)]
    assert (await data(http, env, DEVICE_STREAM, "/blob"))[0]["value"] == "aGk="
    assert (await data(http, env, DEVICE_STREAM, "/when"))[0]["value"] == iso(0.001)
    [with_ms] = await data(http, env, DEVICE_STREAM, "/when", keep_milliseconds="true")
    millis = int(T0.timestamp() * 1000)
    assert with_ms == {"timestamp": millis, "value": millis + 1}


async def test_limit_without_since_gives_the_newest_samples_newest_first(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2, 3, 4])

    page = await data(http, env, DEVICE_STREAM, "/sensors/s1/value", limit=2)

    assert page == [{"timestamp": iso(4), "value": 4.0}, {"timestamp": iso(3), "value": 3.0}]


@pytest.mark.parametrize(
    ("params", "values"),
    [
        ({"since": iso(2)}, [2, 3, 4]),
        ({"since_after": iso(2)}, [3, 4]),
        ({"to": iso(2)}, [0, 1]),
        ({"since": iso(1), "to": iso(3)}, [1, 2]),
        ({"since": iso(1), "limit": 2}, [1, 2]),
        ({"since_after": "2024-05-01T14:00:01+02:00"}, [2, 3, 4]),
        ({"to": "2024-05-01T12:00:02"}, [0, 1]),
        ({"limit": 0}, None),
        ({"since": iso(9)}, None),
        ({"since": ""}, [0, 1, 2, 3, 4]),
    ],
)
async def test_time_bounds_and_limits(
    http: httpx.AsyncClient, env: Env, params: dict[str, Any], values: list[float] | None
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2, 3, 4])

    response = await get(http, env, DEVICE_STREAM, "/sensors/s1/value", **params)

    if values is None:
        assert response.status_code == 404
    else:
        assert [s["value"] for s in response.json()["data"]] == values


async def test_table_and_disjoint_formats(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.0, 2.0])

    table = await get(http, env, DEVICE_STREAM, "/sensors/s1/value", format="table")
    disjoint = await data(http, env, DEVICE_STREAM, "/sensors/s1/value", format="disjoint_tables")

    assert table.json() == {
        "data": [[iso(0), 1.0], [iso(1), 2.0]],
        "metadata": {
            "columns": {"timestamp": 0, "value": 1},
            "table_header": ["timestamp", "value"],
        },
    }
    assert disjoint == {"value": [[1.0, iso(0)], [2.0, iso(1)]]}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"since": iso(0), "since_after": iso(1)},
            {"since_after": ["conflicts already set parameter"]},
        ),
        ({"limit": -1}, {"limit": ["must be greater than or equal to 0"]}),
        ({"limit": "ten"}, {"limit": ["is invalid"]}),
        ({"downsample_to": 2}, {"downsample_to": ["must be greater than 2"]}),
        ({"format": "csv"}, {"format": ["is invalid"]}),
        ({"since": "yesterday"}, {"since": ["is invalid"]}),
        ({"to": "2024-13-01T00:00:00Z"}, {"to": ["is invalid"]}),
        ({"keep_milliseconds": "yes"}, {"keep_milliseconds": ["is invalid"]}),
        ({"allow_bigintegers": "maybe"}, {"allow_bigintegers": ["is invalid"]}),
        (
            {"limit": "x", "format": "csv"},
            {"limit": ["is invalid"], "format": ["is invalid"]},
        ),
    ],
)
async def test_invalid_options_are_422(
    http: httpx.AsyncClient, env: Env, params: dict[str, Any], error: object
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.0])

    response = await get(http, env, DEVICE_STREAM, "/sensors/s1/value", **params)

    assert response.status_code == 422
    assert errors(response) == error


async def test_options_are_checked_before_the_device(http: httpx.AsyncClient, env: Env) -> None:
    response = await http.get(
        f"{BASE}/devices/AAAAAAAAAAAAAAAAAAAAAA/interfaces/{DEVICE_STREAM}",
        params={"limit": -1},
        headers=env.headers,
    )

    assert response.status_code == 422


# --- the server's cap and paging links -----------------------------------------------------


def cap_results(env: Env, limit: int) -> None:
    context = env.platform.api_context
    assert context is not None
    context.settings.appengine_max_results_limit = limit


async def follow(http: httpx.AsyncClient, env: Env, link: str) -> httpx.Response:
    assert link.startswith("/v1/")
    return await http.get("/appengine" + link, headers=env.headers)


async def test_without_limit_the_cap_applies_oldest_first_with_a_next_link(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2, 3, 4])
    cap_results(env, 2)

    first = (await get(http, env, DEVICE_STREAM, "/sensors/s1/value", format="table")).json()
    second = (await follow(http, env, first["links"]["next"])).json()
    third = (await follow(http, env, second["links"]["next"])).json()

    path = f"/v1/test/devices/{DEVICE}/interfaces/{DEVICE_STREAM}/sensors/s1/value"
    assert first["links"] == {
        "next": f"{path}?format=table&since_after=2024-05-01T12%3A00%3A01.000000Z"
    }
    assert [row[1] for row in first["data"]] == [0.0, 1.0]
    assert [row[1] for row in second["data"]] == [2.0, 3.0]
    assert [row[1] for row in third["data"]] == [4.0]
    assert "links" not in third


async def test_limit_above_the_cap_is_capped_and_pages_backwards(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2, 3, 4])
    cap_results(env, 2)

    first = (await get(http, env, DEVICE_STREAM, "/sensors/s1/value", limit=100)).json()
    second = (await follow(http, env, first["links"]["next"])).json()
    third = (await follow(http, env, second["links"]["next"])).json()

    assert "limit=100" in first["links"]["next"]
    assert "to=2024-05-01T12%3A00%3A03.000000Z" in first["links"]["next"]
    assert [s["value"] for s in first["data"]] == [4.0, 3.0]
    assert [s["value"] for s in second["data"]] == [2.0, 1.0]
    assert [s["value"] for s in third["data"]] == [0.0]
    assert "links" not in third


async def test_since_is_replaced_by_since_after_in_the_next_link(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2, 3, 4])

    first = (
        await get(http, env, DEVICE_STREAM, "/sensors/s1/value", since=iso(1), to=iso(4), limit=2)
    ).json()
    second = (await follow(http, env, first["links"]["next"])).json()

    assert "since=" not in first["links"]["next"]
    assert [s["value"] for s in first["data"]] == [1.0, 2.0]
    assert [s["value"] for s in second["data"]] == [3.0]


async def test_next_link_keeps_sub_millisecond_bounds_exact(
    http: httpx.AsyncClient, env: Env
) -> None:
    start = T0 + timedelta(microseconds=250)
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1], start=start)

    first = (await get(http, env, DEVICE_STREAM, "/sensors/s1/value", since=iso(0), limit=1)).json()
    second = (await follow(http, env, first["links"]["next"])).json()

    assert [s["value"] for s in first["data"]] == [0.0]
    assert [s["value"] for s in second["data"]] == [1.0]


async def test_roots_and_properties_have_no_links(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [0, 1, 2])
    cap_results(env, 1)

    assert "links" not in (await get(http, env, DEVICE_STREAM)).json()


# --- downsampling --------------------------------------------------------------------------


async def test_downsampling_keeps_the_ends_and_the_extremes(
    http: httpx.AsyncClient, env: Env
) -> None:
    values = [0, 0, 0, 10, 0, 0, -10, 0, 0, 0]
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", values)

    page = await data(http, env, DEVICE_STREAM, "/sensors/s1/value", downsample_to=4)

    assert [(s["timestamp"], s["value"]) for s in page] == [
        (iso(0), 0.0),
        (iso(3), 10.0),
        (iso(6), -10.0),
        (iso(9), 0.0),
    ]


async def test_downsampling_to_more_points_than_stored_changes_nothing(
    http: httpx.AsyncClient, env: Env
) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1, 2, 3])

    page = await data(http, env, DEVICE_STREAM, "/sensors/s1/value", downsample_to=3)

    assert [s["value"] for s in page] == [1.0, 2.0, 3.0]


async def test_downsampling_non_numeric_values_is_422(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/label", ["a", "b", "c", "d"])

    response = await get(http, env, DEVICE_STREAM, "/sensors/s1/label", downsample_to=3)

    assert response.status_code == 422
    assert errors(response) == {"downsample_to": ["is invalid for non-numeric values"]}


# --- object aggregates ---------------------------------------------------------------------


async def add_rooms(env: Env) -> None:
    await env.add_samples(
        DEVICE_OBJECT,
        "/kitchen",
        [{"temp": 20.0, "hum": 40.0}, {"temp": 21.0, "label": "warm"}],
        aggregation=OBJ,
    )


async def test_object_samples_have_every_key_null_when_absent(
    http: httpx.AsyncClient, env: Env
) -> None:
    await add_rooms(env)

    assert await data(http, env, DEVICE_OBJECT, "/kitchen") == [
        {"temp": 20.0, "hum": 40.0, "label": None, "timestamp": iso(0)},
        {"temp": 21.0, "hum": None, "label": "warm", "timestamp": iso(1)},
    ]
    newest = await data(http, env, DEVICE_OBJECT, "/kitchen", limit=1, keep_milliseconds="1")
    assert newest == [
        {"temp": 21.0, "hum": None, "label": "warm", "timestamp": int(T0.timestamp()) * 1000 + 1000}
    ]


async def test_object_table_and_disjoint_formats(http: httpx.AsyncClient, env: Env) -> None:
    await add_rooms(env)

    table = (await get(http, env, DEVICE_OBJECT, "/kitchen", format="table")).json()
    disjoint = await data(http, env, DEVICE_OBJECT, "/kitchen", format="disjoint_tables")

    assert table == {
        "data": [[iso(0), 20.0, 40.0, None], [iso(1), 21.0, None, "warm"]],
        "metadata": {
            "columns": {"timestamp": 0, "temp": 1, "hum": 2, "label": 3},
            "table_header": ["timestamp", "temp", "hum", "label"],
        },
    }
    assert disjoint == {
        "temp": [[20.0, iso(0)], [21.0, iso(1)]],
        "hum": [[40.0, iso(0)], [None, iso(1)]],
        "label": [[None, iso(0)], ["warm", iso(1)]],
    }


async def test_object_root_with_one_path_gives_its_samples_below_the_path(
    http: httpx.AsyncClient, env: Env
) -> None:
    await add_rooms(env)

    tree = await data(http, env, DEVICE_OBJECT)
    table = (await get(http, env, DEVICE_OBJECT, format="table")).json()

    assert tree == {"kitchen": await data(http, env, DEVICE_OBJECT, "/kitchen")}
    assert table["data"] == {"kitchen": [[iso(0), 20.0, 40.0, None], [iso(1), 21.0, None, "warm"]]}
    assert table["metadata"]["table_header"] == ["timestamp", "temp", "hum", "label"]


async def test_object_root_with_several_paths_gives_the_latest_sample_of_each(
    http: httpx.AsyncClient, env: Env
) -> None:
    await add_rooms(env)
    await env.add_samples(DEVICE_OBJECT, "/hall", [{"temp": 18.0}], aggregation=OBJ)

    assert await data(http, env, DEVICE_OBJECT) == {
        "kitchen": {"temp": 21.0, "hum": None, "label": "warm", "timestamp": iso(1)},
        "hall": {"temp": 18.0, "hum": None, "label": None, "timestamp": iso(0)},
    }
    assert await data(http, env, DEVICE_OBJECT, format="table") == {
        "kitchen": [iso(1), 21.0, None, "warm"],
        "hall": [iso(0), 18.0, None, None],
    }


async def test_object_at_the_root_path_and_longintegers(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(ROOT_OBJECT, "/", [{"a": 1.0, "b": BIG}], aggregation=OBJ)

    expected = [{"a": 1.0, "b": str(BIG), "timestamp": iso(0)}]
    assert await data(http, env, ROOT_OBJECT) == expected
    assert await data(http, env, ROOT_OBJECT, allow_bigintegers="true") == expected


async def test_object_bounds_selecting_nothing(http: httpx.AsyncClient, env: Env) -> None:
    await add_rooms(env)

    assert await data(http, env, DEVICE_OBJECT, since=iso(5)) == {}
    response = await get(http, env, DEVICE_OBJECT, "/kitchen", since=iso(5))
    assert response.status_code == 404
    assert errors(response) == {"detail": "Path not found"}


async def test_object_roots_without_samples(http: httpx.AsyncClient, env: Env) -> None:
    assert await data(http, env, DEVICE_OBJECT) == {}
    assert await data(http, env, ROOT_OBJECT) == {}


@pytest.mark.parametrize(
    ("path", "status"), [("/hall", 404), ("/kitchen/temp", 404), ("/a/b/c", 400)]
)
async def test_object_paths_without_samples(
    http: httpx.AsyncClient, env: Env, path: str, status: int
) -> None:
    await add_rooms(env)

    response = await get(http, env, DEVICE_OBJECT, path)

    assert response.status_code == status
    detail = "Path not found" if status == 404 else "Endpoint not found"
    assert errors(response) == {"detail": detail}


async def test_object_downsampling_follows_the_downsample_key(
    http: httpx.AsyncClient, env: Env
) -> None:
    rows = [{"temp": t, "hum": 1.0} for t in (0.0, 0.0, 9.0, 0.0, 0.0)]
    await env.add_samples(DEVICE_OBJECT, "/kitchen", [*rows, {"hum": 2.0}], aggregation=OBJ)

    page = await data(http, env, DEVICE_OBJECT, "/kitchen", downsample_to=3, downsample_key="temp")

    assert [(s["timestamp"], s["temp"]) for s in page] == [
        (iso(0), 0.0),
        (iso(2), 9.0),
        (iso(4), 0.0),
    ]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"downsample_to": 3}, {"downsample_key": ["can't be blank"]}),
        ({"downsample_to": 3, "downsample_key": "label"}, {"downsample_key": ["is invalid"]}),
        ({"downsample_to": 3, "downsample_key": "wind"}, {"downsample_key": ["is invalid"]}),
    ],
)
async def test_object_downsampling_needs_a_numeric_key(
    http: httpx.AsyncClient, env: Env, params: dict[str, Any], error: object
) -> None:
    await add_rooms(env)

    response = await get(http, env, DEVICE_OBJECT, "/kitchen", **params)

    assert response.status_code == 422
    assert errors(response) == error


async def test_expired_samples_are_not_read(http: httpx.AsyncClient, env: Env) -> None:
    await env.add_samples(DEVICE_STREAM, "/sensors/s1/value", [1.0])
    expired = datetime.now(UTC) - timedelta(seconds=1)
    await env.storage.values.apply(
        [
            DatastreamSample(
                REALM, DEVICE, DEVICE_STREAM, 1, "/sensors/s2/value", 5.0, T0, T0, expired
            )
        ]
    )

    assert list((await data(http, env, DEVICE_STREAM))["sensors"]) == ["s1"]
    assert (await get(http, env, DEVICE_STREAM, "/sensors/s2/value")).status_code == 404
