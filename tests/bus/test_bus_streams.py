"""The stream contract, on every backend: what a consumer of a stream can rely on.

`inproc` and RabbitMQ differ by design in when `publish` returns (after the consumer's ack,
or after the broker's confirm) and in who consumes (one active consumer, or shards spread over
all): publishes here run as tasks awaited together, and assertions hold for both. What only
one backend does is in its own test module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from bus_support import STREAM, Backend, Recorder, key_of, numbered, per_key, until

from astraea.bus.base import Bus, shard_of
from astraea.bus.messages import Connected, DeviceMessage, Disconnected, Registered


async def publish_all(bus: Bus, messages: list[DeviceMessage]) -> None:
    """Each device's messages one after the other, all devices at once."""
    by_key: dict[str, list[DeviceMessage]] = {}
    for message in messages:
        by_key.setdefault(key_of(message), []).append(message)

    async def one_device(sequence: list[DeviceMessage]) -> None:
        for message in sequence:
            await bus.publish(STREAM, key_of(message), message)

    await asyncio.gather(*(one_device(sequence) for sequence in by_key.values()))


async def test_every_kind_of_device_message_arrives_as_sent(backend: Backend) -> None:
    recorder = Recorder()
    await backend.bus.consume(STREAM, recorder)
    sent = [
        numbered("d1", 0, Connected("192.0.2.7")),
        numbered("d1", 1),
        numbered("d1", 2, Disconnected()),
        numbered("d1", 3, Registered()),
    ]
    await publish_all(backend.bus, sent)
    await until(lambda: len(recorder.handled) == len(sent))
    assert recorder.handled == sent


async def test_order_per_key_holds_with_many_keys_and_concurrent_publishers(
    backend: Backend,
) -> None:
    recorder = Recorder()
    await backend.bus.consume(STREAM, recorder)
    sent = [numbered(f"device-{d}", n) for n in range(25) for d in range(40)]
    await publish_all(backend.bus, sent)
    await until(lambda: len(recorder.handled) == len(sent))
    assert all(
        [number for _, number in handled] == list(range(25))
        for handled in per_key(recorder.log).values()
    )
    assert len(per_key(recorder.log)) == 40


async def test_messages_arriving_while_busy_are_batched_up_to_max_batch(
    backend: Backend,
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    await backend.bus.consume(STREAM, recorder, max_batch=7)
    sent = [numbered(f"device-{d}", 0) for d in range(50)]
    publishing = asyncio.ensure_future(publish_all(backend.bus, sent))
    await until(lambda: len(recorder.batches) == 1)
    await asyncio.wait([publishing], timeout=0.5)  # inproc's publishes wait for the handler
    await asyncio.sleep(0.2)
    recorder.gate.set()
    await publishing
    await until(lambda: len(recorder.handled) == len(sent))
    assert sorted(recorder.handled, key=key_of) == sorted(sent, key=key_of)
    assert max(len(batch) for batch in recorder.batches) == 7
    assert recorder.most_running == 1


async def test_a_failed_batch_is_handed_again_unchanged(backend: Backend) -> None:
    recorder = Recorder(fail=lambda call: call < 2)
    await backend.bus.consume(STREAM, recorder)
    sent = [numbered("d1", n) for n in range(5)]
    await publish_all(backend.bus, sent)
    await until(lambda: len(recorder.handled) == len(sent))
    assert recorder.batches[0] == recorder.batches[1] == recorder.batches[2]
    assert recorder.handled == sent


async def test_a_batch_never_handled_goes_to_the_next_consumer(backend: Backend) -> None:
    """Nothing is acknowledged early: what a failing consumer holds when it is cancelled is
    handed, in order, to the consumer that takes over."""
    failing = Recorder("failing", fail=lambda call: True)
    subscription = await backend.bus.consume(STREAM, failing)
    sent = [numbered("d1", n) for n in range(10)]
    publishing = asyncio.ensure_future(publish_all(backend.bus, sent))
    await until(lambda: len(failing.batches) >= 3)
    taking_over = Recorder("taking over")
    await (await backend.peer()).consume(STREAM, taking_over)
    await subscription.cancel()
    await publishing
    await until(lambda: len(taking_over.handled) == len(sent))
    assert taking_over.handled == sent
    assert failing.handled == []


PER_KEY = 40


async def test_a_cancelled_consumers_keys_move_to_another_in_order(backend: Backend) -> None:
    log: list[tuple[str, DeviceMessage]] = []
    first = Recorder("first", log=log, delay=0.02)
    second = Recorder("second", log=log, delay=0.02)
    subscription = await backend.bus.consume(STREAM, first, max_batch=10)
    await (await backend.peer()).consume(STREAM, second, max_batch=10)
    # Enough per key that the batch in hand when `first` is cancelled (at most max_batch of
    # one key) cannot finish every key it started.
    sent = [numbered(f"device-{d}", n) for n in range(PER_KEY) for d in range(40)]
    publishing = asyncio.ensure_future(publish_all(backend.bus, sent))
    await until(lambda: len(first.handled) >= 10)
    await subscription.cancel()
    handled_by_first = len(first.handled)
    await publishing
    await until(lambda: len(log) == len(sent))
    assert len(first.handled) == handled_by_first
    keys = per_key(log)
    assert all([number for _, number in keys[key]] == list(range(PER_KEY)) for key in keys)
    moved = [key for key, handled in keys.items() if {"first", "second"} <= {n for n, _ in handled}]
    assert moved, "some key the first consumer had must have gone to the second"
    assert all(handled[-1][0] == "second" for handled in (keys[key] for key in moved))


async def test_a_cancelled_consumer_is_handed_nothing_more(backend: Backend) -> None:
    first = Recorder("first")
    subscription = await backend.bus.consume(STREAM, first)
    await publish_all(backend.bus, [numbered("d1", 0)])
    await until(lambda: len(first.handled) == 1)
    await subscription.cancel()
    second = Recorder("second")
    await (await backend.peer()).consume(STREAM, second)
    await publish_all(backend.bus, [numbered("d1", 1)])
    await until(lambda: len(second.handled) == 1)
    assert [m.node for m in first.handled] == ["node-0"]
    assert [m.node for m in second.handled] == ["node-1"]


async def test_a_shard_is_announced_as_taken_before_its_messages_each_time_it_moves(
    backend: Backend,
) -> None:
    """What a consumer remembers about a key may be stale once another consumer handled it:
    `on_taken` tells it which shards to forget, before their messages arrive."""
    events: list[tuple[str, object]] = []

    def taken(name: str) -> Callable[[int], None]:
        return lambda shard: events.append((name, shard))

    def recording(name: str) -> Callable[[Sequence[DeviceMessage]], Awaitable[None]]:
        async def handle(batch: Sequence[DeviceMessage]) -> None:
            events.extend((name, message) for message in batch)

        return handle

    first = await backend.bus.consume(STREAM, recording("first"), on_taken=taken("first"))
    await publish_all(backend.bus, [numbered("d1", 0)])
    await until(lambda: any(isinstance(event, DeviceMessage) for _, event in events))
    shard = shard_of(key_of(numbered("d1", 0)))
    assert events.index(("first", shard)) < next(
        i for i, (_, event) in enumerate(events) if isinstance(event, DeviceMessage)
    )
    await (await backend.peer()).consume(STREAM, recording("second"), on_taken=taken("second"))
    await first.cancel()
    await publish_all(backend.bus, [numbered("d1", 1)])
    await until(lambda: ("second", numbered("d1", 1)) in events)
    assert events.index(("second", shard)) < events.index(("second", numbered("d1", 1)))
