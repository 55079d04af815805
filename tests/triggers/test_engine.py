"""The trigger engine end to end: real receivers, real SQLite queues, policies and metrics."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from prometheus_client import CollectorRegistry
from trigger_support import (
    DEVICE,
    OTHER_DEVICE,
    EngineFactory,
    FakeTrigger,
    Received,
    Receiver,
    event_for,
    eventually,
    eventually_async,
    http_trigger,
    refused_url,
)

from astraea.core.device_id import random_device_id
from astraea.core.trigger_actions import AmqpAction
from astraea.core.trigger_events import IncomingData
from astraea.core.trigger_policies import Policy, parse_policy
from astraea.storage.base import Storage
from astraea.triggers import delivery_queue
from astraea.triggers.engine import EngineSettings


def metric(
    registry: CollectorRegistry, name: str, trigger: str = "trigger", **labels: str
) -> float:
    value = registry.get_sample_value(name, {"realm": "test", "trigger": trigger, **labels})
    return value or 0.0


def dropped(registry: CollectorRegistry, reason: str, trigger: str = "trigger") -> float:
    return metric(registry, "astraea_trigger_events_dropped_total", trigger, reason=reason)


def retry_policy(**overrides: object) -> Policy:
    doc: dict[str, object] = {
        "name": "retrying",
        "maximum_capacity": 100,
        "retry_times": 3,
        "error_handlers": [{"on": "server_error", "strategy": "retry"}],
    }
    doc.update(overrides)
    return parse_policy(doc)


def numbered(n: int) -> IncomingData:
    return IncomingData("org.example.Counter", "/n", n)


def _queues_empty(storage: Storage) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await storage.delivery_queue.queues() == []

    return check


def numbers(requests: list[Received]) -> list[int]:
    return [orjson.loads(request.body)["event"]["value"] for request in requests]


async def test_default_json_delivery_and_metrics(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/hook", 200), name="connected")
    await engine.submit(trigger, None, event_for(trigger))
    (request,) = await receiver.wait_for("/hook", 1)
    body = orjson.loads(request.body)
    assert body["device_id"] == DEVICE and body["trigger_name"] == "connected"
    assert body["event"] == {"type": "device_connected", "device_ip_address": "10.0.0.1"}
    assert request.header("astarte-realm") == ["test"]
    await eventually(
        lambda: metric(registry, "astraea_trigger_events_delivered_total", "connected") == 1
    )
    assert metric(registry, "astraea_trigger_delivery_latency_seconds_count", "connected") == 1


async def test_without_policy_one_attempt_and_errors_ignored(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/fail", 503))
    refused = http_trigger(refused_url(), name="refused")
    await engine.submit(trigger, None, event_for(trigger))
    await engine.submit(refused, None, event_for(refused))
    await eventually(
        lambda: (
            dropped(registry, "discarded") == 1 and dropped(registry, "discarded", "refused") == 1
        )
    )
    await asyncio.sleep(0.2)
    assert len(receiver.at("/fail")) == 1
    assert metric(registry, "astraea_trigger_delivery_retries_total") == 0


async def test_server_errors_retried_up_to_retry_times_attempts(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    recovering = http_trigger(receiver.respond("/recovering", 500, 502, 200), name="recovering")
    dead = http_trigger(receiver.respond("/dead", 500), name="dead")
    await engine.submit(recovering, retry_policy(), event_for(recovering))
    await engine.submit(dead, retry_policy(name="other"), event_for(dead))
    await eventually(lambda: dropped(registry, "discarded", "dead") == 1)
    await eventually(
        lambda: metric(registry, "astraea_trigger_events_delivered_total", "recovering") == 1
    )
    assert len(receiver.at("/recovering")) == 3
    assert len(receiver.at("/dead")) == 3  # retry_times counts every attempt
    assert metric(registry, "astraea_trigger_delivery_retries_total", "dead") == 2


async def test_handlers_by_class_and_by_code(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    policy = retry_policy(
        retry_times=2,
        error_handlers=[
            {"on": [418, 503], "strategy": "retry"},
            {"on": [400, 404], "strategy": "discard"},
        ],
    )
    paths = {"/teapot": 418, "/unavailable": 503, "/missing": 404, "/internal": 500}
    for path, status in paths.items():
        trigger = http_trigger(receiver.respond(path, status), name=path)
        await engine.submit(trigger, policy, event_for(trigger, device_id=random_device_id()))
    await eventually(lambda: sum(dropped(registry, "discarded", path) for path in paths) == 4)
    attempts = {path: len(receiver.at(path)) for path in paths}
    assert attempts == {"/teapot": 2, "/unavailable": 2, "/missing": 1, "/internal": 1}


async def test_client_errors_discarded_server_errors_retried(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    policy = retry_policy(
        error_handlers=[
            {"on": "server_error", "strategy": "retry"},
            {"on": "client_error", "strategy": "discard"},
        ]
    )
    client = http_trigger(receiver.respond("/bad", 400), name="bad")
    server = http_trigger(receiver.respond("/flaky", 500, 200), name="flaky")
    await engine.submit(client, policy, event_for(client))
    await engine.submit(server, policy, event_for(server, device_id=OTHER_DEVICE))
    await eventually(
        lambda: metric(registry, "astraea_trigger_events_delivered_total", "flaky") == 1
    )
    await eventually(lambda: dropped(registry, "discarded", "bad") == 1)
    assert (len(receiver.at("/bad")), len(receiver.at("/flaky"))) == (1, 2)


async def test_refused_connection_counts_as_503(
    start_engine: EngineFactory, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(refused_url())
    await engine.submit(trigger, retry_policy(retry_times=4), event_for(trigger))
    await eventually(lambda: dropped(registry, "discarded") == 1)
    assert metric(registry, "astraea_trigger_delivery_retries_total") == 3


async def test_capacity_drops_the_oldest_and_counts_them(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    url = receiver.respond("/full", 503)
    trigger = http_trigger(url)
    policy = retry_policy(maximum_capacity=2, retry_times=100)
    for n in range(10):
        await engine.submit(trigger, policy, event_for(trigger, numbered(n)))
    # Event 0 is in flight (unacknowledged, not counted); 1..7 are the oldest of the rest.
    await eventually(lambda: dropped(registry, "capacity") == 7)
    receiver.respond("/full", 200)
    await eventually(lambda: metric(registry, "astraea_trigger_events_delivered_total") == 3)
    assert numbers(receiver.at("/full"))[-3:] == [0, 8, 9]


async def test_event_ttl_expires_queued_and_retried_events(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/late", 503))
    policy = retry_policy(event_ttl=1, retry_times=100)
    for n in range(3):
        await engine.submit(trigger, policy, event_for(trigger, numbered(n)))
    await eventually(lambda: dropped(registry, "expired") == 3, timeout=5)
    seen = len(receiver.at("/late"))
    await asyncio.sleep(0.3)
    assert len(receiver.at("/late")) == seen  # nothing left to retry
    assert set(numbers(receiver.at("/late"))) == {0}  # prefetch 1: only the head was tried


async def test_prefetch_one_keeps_order_through_retries(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/ordered", 500, 500, 200))
    policy = retry_policy()
    for n in range(5):
        await engine.submit(
            trigger, policy, event_for(trigger, numbered(n), device_id=random_device_id())
        )
    requests = await receiver.wait_for("/ordered", 7)
    assert numbers(requests) == [0, 0, 0, 1, 2, 3, 4]


async def test_prefetch_count_runs_deliveries_concurrently(
    start_engine: EngineFactory, receiver: Receiver
) -> None:
    engine = await start_engine()
    serial = http_trigger(receiver.respond("/serial", 200, delay=0.3), name="serial")
    parallel = http_trigger(receiver.respond("/parallel", 200, delay=0.3), name="parallel")
    started = time.monotonic()
    for _n in range(5):
        device = random_device_id()
        await engine.submit(
            parallel,
            retry_policy(name="wide", prefetch_count=5),
            event_for(parallel, device_id=device),
        )
        await engine.submit(
            serial, retry_policy(name="narrow"), event_for(serial, device_id=device)
        )
    parallel_requests = await receiver.wait_for("/parallel", 5)
    assert parallel_requests[-1].at - started < 1.0
    serial_requests = await receiver.wait_for("/serial", 5)
    gaps = [b.at - a.at for a, b in itertools.pairwise(serial_requests)]
    assert min(gaps) >= 0.25


async def test_one_device_in_order_even_with_concurrency(
    start_engine: EngineFactory, receiver: Receiver
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/device", 200, delay=0.05))
    for n in range(8):
        await engine.submit(trigger, None, event_for(trigger, numbered(n)))
    assert numbers(await receiver.wait_for("/device", 8)) == list(range(8))


async def test_slow_and_dead_receivers_only_fill_their_own_queue(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    slow = http_trigger(receiver.respond("/slow", 200, delay=1.5), name="slow")
    dead = http_trigger(refused_url(), name="dead")
    fast = http_trigger(receiver.respond("/fast", 200), name="fast")
    await engine.submit_all(
        [
            submission
            for n in range(200)
            for submission in (
                (slow, retry_policy(name="slow"), event_for(slow, numbered(n))),
                (dead, retry_policy(name="dead", retry_times=100), event_for(dead, numbered(n))),
            )
        ]
    )
    started = time.monotonic()
    for n in range(20):
        await engine.submit(fast, None, event_for(fast, numbered(n), device_id=random_device_id()))
    await receiver.wait_for("/fast", 20, timeout=3)
    assert time.monotonic() - started < 1.4  # well before the first slow answer
    assert len(receiver.at("/slow")) <= 1  # prefetch 1: the rest wait in its own queue


async def test_mustache_and_ignore_ssl_errors(
    start_engine: EngineFactory, tls_receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    template = (
        "{{ realm }}/{{ device_id }}/{{ trigger_name }}/{{ event_type }}/{{ device_ip_address }}"
    )
    trusting = http_trigger(
        tls_receiver.respond("/mustache", 200),
        name="trusting",
        ignore_ssl_errors=True,
        template=template,
        template_type="mustache",
    )
    strict = http_trigger(tls_receiver.respond("/strict", 200), name="strict")
    await engine.submit(trusting, None, event_for(trusting))
    await engine.submit(strict, None, event_for(strict))
    (request,) = await tls_receiver.wait_for("/mustache", 1)
    assert request.body.decode() == f"test/{DEVICE}/trusting/device_connected_event/10.0.0.1"
    assert request.header("content-type") == ["text/plain"]
    await eventually(lambda: dropped(registry, "discarded", "strict") == 1)
    assert tls_receiver.at("/strict") == []


async def test_amqp_action_without_broker_is_dropped_and_counted(
    start_engine: EngineFactory, registry: CollectorRegistry
) -> None:
    engine = await start_engine(EngineSettings(amqp_url=None))
    trigger = FakeTrigger("amqp", AmqpAction("astarte_events_test_x", "rk", 1000, True))
    await engine.submit(trigger, None, event_for(trigger))
    await eventually(lambda: dropped(registry, "undeliverable", "amqp") == 1)


@pytest.mark.parametrize("memory_limit", [10_000, 3])
async def test_queue_past_its_memory_reads_the_rest_from_storage(
    start_engine: EngineFactory,
    receiver: Receiver,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    memory_limit: int,
) -> None:
    """Fresh deliveries go from memory while the queue fits there; past that, in order, from
    storage, and back to memory once it caught up. Each arrives once."""
    monkeypatch.setattr(delivery_queue, "_MEMORY_LIMIT", memory_limit)
    monkeypatch.setattr(delivery_queue, "_FETCH_CHUNK", 2)
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/memory", 200, delay=0.01))
    for n in range(20):
        await engine.submit(
            trigger, retry_policy(prefetch_count=1), event_for(trigger, numbered(n))
        )
    assert numbers(await receiver.wait_for("/memory", 20)) == list(range(20))
    await engine.submit(trigger, retry_policy(prefetch_count=1), event_for(trigger, numbered(20)))
    assert numbers(await receiver.wait_for("/memory", 21))[-1] == 20
    await eventually_async(_queues_empty(storage))


async def test_trimmed_deliveries_leave_memory_too(
    start_engine: EngineFactory, receiver: Receiver, registry: CollectorRegistry
) -> None:
    engine = await start_engine()
    trigger = http_trigger(receiver.respond("/trimmed", 200, delay=0.3))
    policy = retry_policy(maximum_capacity=2, prefetch_count=1)
    for n in range(6):
        await engine.submit(trigger, policy, event_for(trigger, numbered(n)))
    await eventually(lambda: dropped(registry, "capacity") == 3)
    await asyncio.sleep(1.5)
    assert numbers(receiver.at("/trimmed")) == [0, 4, 5]  # 0 was in flight; 1-3 trimmed
