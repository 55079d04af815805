"""HTTP actions against real receivers: body, headers, methods, TLS, failures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from trigger_support import DEVICE, Receiver, refused_url

from astraea.core.trigger_actions import HttpAction
from astraea.core.trigger_events import (
    DeviceConnected,
    IncomingData,
    SimpleEvent,
    ValueChange,
)
from astraea.triggers.http_delivery import (
    CONNECTION_FAILED,
    HttpDeliverer,
    UndeliverableError,
    build_request,
)

EVENT = SimpleEvent(
    realm="test",
    device_id=DEVICE,
    timestamp_ms=1_571_216_168_534,
    simple_trigger_id=uuid.UUID(int=1),
    parent_trigger_id=uuid.UUID(int=2),
    event=DeviceConnected("172.18.0.1"),
)


@pytest.fixture
async def deliverer() -> AsyncIterator[HttpDeliverer]:
    client = HttpDeliverer(timeout=1.0)
    try:
        yield client
    finally:
        await client.close()


def test_default_request() -> None:
    action = HttpAction(
        url="https://example.com/hook",
        method="post",
        static_headers=(("Authorization", "Bearer t"),),
    )
    request = build_request(action, EVENT, "my_trigger")
    assert (request.method, request.url) == ("POST", "https://example.com/hook")
    assert request.headers == (
        ("Authorization", "Bearer t"),
        ("Astarte-Realm", "test"),
        ("Content-Type", "application/json"),
    )
    assert orjson.loads(request.body) == {
        "timestamp": "2019-10-16T08:56:08.534Z",
        "device_id": DEVICE,
        "event": {"type": "device_connected", "device_ip_address": "172.18.0.1"},
        "trigger_name": "my_trigger",
    }


def test_documented_mustache_example() -> None:
    action = HttpAction(
        url="https://example.com/my_mustache_hook",
        method="post",
        template="Device {{ device_id }} just connected from IP {{ device_ip_address }}",
        template_type="mustache",
    )
    request = build_request(action, EVENT, "example_mustache_trigger")
    assert request.body == f"Device {DEVICE} just connected from IP 172.18.0.1".encode()
    assert dict(request.headers)["Content-Type"] == "text/plain"
    assert dict(request.headers)["Astarte-Realm"] == "test"


def test_mustache_sees_every_basic_and_event_key() -> None:
    template = "{{realm}}|{{device_id}}|{{trigger_name}}|{{event_type}}|{{interface}}|{{path}}|{{old_value}}|{{new_value}}"
    action = HttpAction(
        url="http://example.com/x", method="put", template=template, template_type="mustache"
    )
    event = SimpleEvent(
        "test",
        DEVICE,
        0,
        uuid.UUID(int=1),
        uuid.UUID(int=2),
        ValueChange("org.I", "/a", b"\x01", 7),
    )
    assert (
        build_request(action, event, "t").body.decode()
        == f"test|{DEVICE}|t|value_change_event|org.I|/a|AQ==|7"
    )


def test_template_without_mustache_type_is_ignored() -> None:
    action = HttpAction(url="http://example.com/x", method="post", template="{{realm}}")
    assert orjson.loads(build_request(action, EVENT, "t").body)["trigger_name"] == "t"


def test_broken_template_is_undeliverable() -> None:
    action = HttpAction(
        url="http://example.com/x", method="post", template="{{#open}}", template_type="mustache"
    )
    with pytest.raises(UndeliverableError):
        build_request(action, EVENT, "t")


async def test_delivery_to_a_plain_receiver(receiver: Receiver, deliverer: HttpDeliverer) -> None:
    url = receiver.respond("/hook", 200)
    action = HttpAction(url=url, method="post", static_headers=(("X-Token", "secret"),))
    assert await deliverer.deliver(action, EVENT, "t") == 200
    (request,) = receiver.at("/hook")
    assert request.method == "POST"
    assert request.header("astarte-realm") == ["test"]
    assert request.header("x-token") == ["secret"]
    assert request.header("content-type") == ["application/json"]
    assert orjson.loads(request.body)["event"]["type"] == "device_connected"


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options", "head"])
async def test_methods(receiver: Receiver, deliverer: HttpDeliverer, method: str) -> None:
    url = receiver.respond("/m", 204)
    data = SimpleEvent(
        "test", DEVICE, 0, uuid.UUID(int=1), uuid.UUID(int=2), IncomingData("org.I", "/a", 1)
    )
    assert await deliverer.deliver(HttpAction(url=url, method=method), data, "t") == 204
    assert receiver.at("/m")[0].method == method.upper()


@pytest.mark.parametrize("status", [301, 400, 404, 418, 500, 503, 599])
async def test_status_codes_are_reported(
    receiver: Receiver, deliverer: HttpDeliverer, status: int
) -> None:
    url = receiver.respond("/s", status)
    assert await deliverer.deliver(HttpAction(url=url, method="post"), EVENT, "t") == status


async def test_refused_connection_is_503(deliverer: HttpDeliverer) -> None:
    assert (
        await deliverer.deliver(HttpAction(url=refused_url(), method="post"), EVENT, "t")
        == CONNECTION_FAILED
    )


async def test_timeout_is_503(receiver: Receiver, deliverer: HttpDeliverer) -> None:
    url = receiver.respond("/slow", 200, delay=3)
    assert (
        await deliverer.deliver(HttpAction(url=url, method="post"), EVENT, "t") == CONNECTION_FAILED
    )


async def test_self_signed_certificate_is_refused_unless_ignored(
    tls_receiver: Receiver, deliverer: HttpDeliverer
) -> None:
    url = tls_receiver.respond("/tls", 200)
    assert (
        await deliverer.deliver(HttpAction(url=url, method="post"), EVENT, "t") == CONNECTION_FAILED
    )
    assert tls_receiver.at("/tls") == []
    trusting = HttpAction(url=url, method="post", ignore_ssl_errors=True)
    assert await deliverer.deliver(trusting, EVENT, "t") == 200
    assert len(tls_receiver.at("/tls")) == 1
