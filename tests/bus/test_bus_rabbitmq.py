"""What only the RabbitMQ bus does, in one test process: messages kept on the broker until a
consumer comes, shards spread over consumers, undecodable messages dropped, and riding out
lost connections and outages."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest
from bus_support import (
    STREAM,
    NewBus,
    Recorder,
    handlings,
    key_of,
    numbered,
    order_violations,
    per_key,
    until,
)
from rabbitmq_support import Broker

from astraea.bus import messages
from astraea.bus.base import SHARD_COUNT, shard_of
from astraea.bus.messages import (
    BroadcastMessage,
    Command,
    CommandResult,
    CommandStatus,
    TriggersChanged,
)
from astraea.bus.rabbitmq import BrokerUnavailable, RabbitMqBus
from astraea.bus.rabbitmq_topology import shard_queue

MAIN = "astraea test-0"  # the client names of the first bus's connections
CONSUMING = f"astraea test-0 consuming {STREAM.name}"


async def test_published_messages_wait_on_the_broker_for_a_consumer(new_bus: NewBus) -> None:
    bus = await new_bus()
    sent = [numbered("d1", n) for n in range(5)]
    for message in sent:
        await bus.publish(STREAM, key_of(message), message)  # returns without any consumer
    recorder = Recorder()
    await (await new_bus()).consume(STREAM, recorder)
    await until(lambda: len(recorder.handled) == len(sent))
    assert recorder.handled == sent


async def test_consumers_share_the_shards_evenly_and_disjointly(new_bus: NewBus) -> None:
    buses = [await new_bus() for _ in range(3)]
    for bus in buses:
        await bus.consume(STREAM, Recorder())

    def held() -> list[frozenset[int]]:
        return [bus.shards(STREAM) for bus in buses]

    share = -(-SHARD_COUNT // len(buses))  # 22: nobody holds more, so nobody less than 20
    await until(lambda: sum(len(s) for s in held()) == SHARD_COUNT)
    assert all(len(s) <= share for s in held())
    assert frozenset[int]().union(*held()) == frozenset(range(SHARD_COUNT))


async def test_an_undecodable_message_is_dropped_and_acknowledged(
    new_bus: NewBus, broker: Broker
) -> None:
    bus = await new_bus()
    good = numbered("d1", 0)
    await bus.publish(STREAM, key_of(good), good)  # declares the queues
    queue = shard_queue(STREAM.name, shard_of(key_of(good)))
    connection = await aio_pika.connect(broker.url)
    async with connection, connection.channel() as channel:
        for body in (b"\xc1 garbage", messages.encode(TriggersChanged("not a device message"))):
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
    after = numbered("d1", 1)
    await bus.publish(STREAM, key_of(after), after)
    first = Recorder("first")
    subscription = await bus.consume(STREAM, first)
    await until(lambda: len(first.handled) == 2)
    await subscription.cancel()
    assert first.handled == [good, after]
    second = Recorder("second")
    await bus.consume(STREAM, second)
    last = numbered("d1", 2)
    await bus.publish(STREAM, key_of(last), last)
    await until(lambda: len(second.handled) == 1)
    assert second.handled == [last]  # nothing dropped came back


async def test_a_batch_in_hand_when_the_connection_drops_is_redelivered_not_acknowledged(
    new_bus: NewBus, broker: Broker
) -> None:
    bus = await new_bus()
    recorder = Recorder()
    recorder.gate.clear()
    await bus.consume(STREAM, recorder)
    sent = [numbered("d1", n) for n in range(3)]
    for message in sent:
        await bus.publish(STREAM, key_of(message), message)
    await until(lambda: len(recorder.batches) == 1)
    await broker.close_connections(CONSUMING)
    await until(lambda: not bus.is_healthy())
    recorder.gate.set()  # the handler returns for a batch whose channel is gone
    await until(lambda: len(recorder.handled) >= 2 * len(recorder.batches[0]))
    await until(bus.is_healthy)
    assert recorder.handled[: len(recorder.batches[0])] == recorder.batches[0]
    assert order_violations(handlings(recorder.log), {"test/d1": 3}, reconnected=True) == []


async def test_everything_comes_back_after_the_connections_are_closed(
    new_bus: NewBus, broker: Broker
) -> None:
    """Streams, servers and subscriptions are restored; a publish in flight is sent again."""
    bus = await new_bus()
    log: list[tuple[str, messages.DeviceMessage]] = []
    recorder = Recorder(log=log, delay=0.002)
    await bus.consume(STREAM, recorder, max_batch=20)

    async def serve(command: Command) -> CommandResult:
        return CommandResult(CommandStatus.DONE)

    await bus.serve("node-a", serve)
    broadcasts: list[BroadcastMessage] = []

    async def subscriber(message: BroadcastMessage) -> None:
        broadcasts.append(message)

    await bus.subscribe(subscriber)

    async def publish_device(d: int) -> None:
        for n in range(100):
            message = numbered(f"device-{d}", n)
            await bus.publish(STREAM, key_of(message), message)
            await asyncio.sleep(0.005)

    publishing = asyncio.gather(*(publish_device(d) for d in range(30)))
    await until(lambda: len(log) > 300)
    await broker.close_connections(MAIN, CONSUMING)
    await until(lambda: not bus.is_healthy())
    await publishing
    await until(lambda: len(log) >= 3000)
    published = {key: 100 for key in per_key(log)}
    assert order_violations(handlings(log), published, reconnected=True) == []
    await until(bus.is_healthy)
    assert await bus.request("node-a", numbered_command(), timeout=5) == CommandResult(
        CommandStatus.DONE
    )
    await bus.broadcast(TriggersChanged("after"))
    await until(lambda: broadcasts == [TriggersChanged("after")])


def numbered_command() -> Command:
    return messages.DisconnectDevice("test", "d1", messages.DisconnectCause.FORCED)


async def test_publishing_waits_out_a_short_outage_and_fails_a_long_one(
    new_bus: NewBus, broker: Broker
) -> None:
    bus = await new_bus(outage_timeout=1.0, backoff=(0.05, 0.2))
    recorder = Recorder()
    await bus.consume(STREAM, recorder)
    await broker.allow(False)  # refused from now on: the consumer's heartbeat breaks at once
    await broker.close_connections(MAIN)
    await until(lambda: not bus.is_healthy())
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await bus.publish(STREAM, "test/d1", numbered("d1", 0))
    assert 0.9 < time.monotonic() - started < 3
    waiting = asyncio.ensure_future(bus.publish(STREAM, "test/d1", numbered("d1", 1)))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await broker.allow(True)
    await waiting
    await until(lambda: [m.node for m in recorder.handled] == ["node-1"])
    assert bus.is_healthy()


async def test_starting_without_a_broker_fails_within_the_connect_timeout() -> None:
    bus = RabbitMqBus("amqp://guest:guest@127.0.0.1:1/", "nowhere", connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await bus.start()
    assert time.monotonic() - started < 2


async def test_a_subscriber_is_handed_one_broadcast_at_a_time(new_bus: NewBus) -> None:
    """Even when broadcasts come faster than it handles them (aio-pika would call a callback
    for each delivery at once)."""
    bus = await new_bus()
    handled: list[BroadcastMessage] = []
    running = most_running = 0

    async def handler(message: BroadcastMessage) -> None:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        await asyncio.sleep(0.01)
        handled.append(message)
        running -= 1

    await (await new_bus()).subscribe(handler)
    sent = [TriggersChanged(f"realm-{n}") for n in range(10)]
    await asyncio.gather(*(bus.broadcast(message) for message in sent))
    await until(lambda: len(handled) == len(sent))
    assert handled == sent
    assert most_running == 1
