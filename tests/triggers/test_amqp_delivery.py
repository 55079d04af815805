"""AMQP 0-9-1 actions against a real RabbitMQ: exchange, routing, headers, properties, body."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from prometheus_client import CollectorRegistry
from trigger_support import (
    DEVICE,
    EngineFactory,
    FakeTrigger,
    event_for,
    eventually,
    refused_url,
)

from astraea.core.simple_event_codec import decode_simple_event, encode_simple_event
from astraea.core.trigger_actions import AmqpAction
from astraea.core.trigger_events import IncomingData, ValueChange
from astraea.triggers.amqp_delivery import PUBLISH_FAILED, AmqpPublisher
from astraea.triggers.engine import EngineSettings


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
def exchange() -> str:
    return f"astarte_events_test_{uuid.uuid4().hex}"


@pytest.fixture
async def bound_queue(
    channel: aio_pika.abc.AbstractChannel, exchange: str
) -> AsyncIterator[AbstractQueue]:
    """A queue bound to `exchange` with routing key `rk`; the exchange is created like the
    engine declares it, and deleted afterwards."""
    declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(exclusive=True, arguments={"x-max-priority": 9})
    await queue.bind(declared, "rk")
    try:
        yield queue
    finally:
        await declared.delete()


async def next_message(queue: AbstractQueue, timeout: float = 10.0) -> AbstractIncomingMessage:
    deadline = asyncio.get_running_loop().time() + timeout
    while (message := await queue.get(fail=False, no_ack=True)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no message arrived")
        await asyncio.sleep(0.02)
    return message


def amqp_action(exchange: str, **overrides: Any) -> AmqpAction:
    return AmqpAction(
        **{
            "exchange": exchange,
            "routing_key": "rk",
            "message_expiration_ms": 60_000,
            "message_persistent": True,
            **overrides,
        }
    )


def amqp_trigger(exchange: str, **overrides: Any) -> FakeTrigger:
    return FakeTrigger("amqp_trigger", amqp_action(exchange, **overrides))


async def test_publisher_sends_the_protobuf_event_with_astarte_headers(
    amqp_url: str, bound_queue: AbstractQueue, exchange: str
) -> None:
    action = amqp_action(
        exchange,
        message_priority=7,
        static_headers=(("x-custom", "yes"),),
        message_expiration_ms=12_345,
    )
    trigger = FakeTrigger("amqp_trigger", action)
    event = event_for(trigger, ValueChange("org.example.P", "/a", 1, b"\x02"))
    publisher = AmqpPublisher(amqp_url, timeout=5)
    try:
        assert await publisher.deliver(action, event, encode_simple_event(event)) == 200
    finally:
        await publisher.close()
    message = await next_message(bound_queue)
    assert decode_simple_event(message.body) == event
    assert message.headers == {
        "x_astarte_realm": "test",
        "x_astarte_device_id": DEVICE,
        "x_astarte_simple_trigger_id": str(event.simple_trigger_id),
        "x_astarte_parent_trigger_id": str(trigger.trigger_id),
        "x_astarte_event_type": "value_change_event",
        "x-custom": "yes",
    }
    assert message.expiration == 12.345  # aio-pika reports the "12345" ms property in seconds
    assert message.priority == 7
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id is not None
    assert re.fullmatch(
        rf"test-{DEVICE[:16]}-{event.timestamp_ms:x}-[0-9a-f]{{16}}", message.message_id
    )


async def test_publisher_declares_a_durable_direct_exchange(
    amqp_url: str, channel: aio_pika.abc.AbstractChannel, exchange: str
) -> None:
    action = amqp_action(exchange, message_persistent=False)
    event = event_for(FakeTrigger("amqp_trigger", action))
    publisher = AmqpPublisher(amqp_url, timeout=5)
    try:
        # Nothing is bound: the broker confirms and drops the message, as with Astarte.
        assert await publisher.deliver(action, event, b"x") == 200
    finally:
        await publisher.close()
    declared = await channel.declare_exchange(
        exchange, aio_pika.ExchangeType.DIRECT, durable=True, passive=True
    )
    await declared.delete()


async def test_unreachable_broker_reports_failure() -> None:
    publisher = AmqpPublisher(refused_url().replace("http", "amqp"), timeout=2)
    action = amqp_action("astarte_events_test_x")
    event = event_for(FakeTrigger("amqp_trigger", action))
    try:
        assert await publisher.deliver(action, event, b"x") == PUBLISH_FAILED
    finally:
        await publisher.close()


async def test_engine_publishes_amqp_actions_in_order(
    start_engine: EngineFactory,
    bound_queue: AbstractQueue,
    exchange: str,
    registry: CollectorRegistry,
    amqp_url: str,
) -> None:
    engine = await start_engine()
    trigger = amqp_trigger(exchange)
    events = [event_for(trigger, IncomingData("org.example.I", "/n", n)) for n in range(20)]
    for event in events:
        await engine.submit(trigger, None, event)
    received = [decode_simple_event((await next_message(bound_queue)).body) for _ in events]
    assert received == events
    labels = {"realm": "test", "trigger": "amqp_trigger"}
    await eventually(
        lambda: registry.get_sample_value("astraea_trigger_events_delivered_total", labels) == 20
    )


async def test_engine_retries_amqp_until_the_broker_answers(
    start_engine: EngineFactory, registry: CollectorRegistry
) -> None:
    broken = EngineSettings(
        amqp_url=refused_url().replace("http", "amqp"),
        amqp_timeout=1,
        retry_delay=0.01,
        max_retry_delay=0.02,
    )
    engine = await start_engine(broken)
    trigger = amqp_trigger("astarte_events_test_never")
    await engine.submit(trigger, None, event_for(trigger))
    labels = {"realm": "test", "trigger": "amqp_trigger"}
    await eventually(
        lambda: (
            (registry.get_sample_value("astraea_trigger_delivery_retries_total", labels) or 0) >= 3
        )
    )
    assert (
        registry.get_sample_value(
            "astraea_trigger_events_dropped_total", {**labels, "reason": "discarded"}
        )
        is None
    )
