"""Several engines on one storage: a queue is delivered by the engine holding its lease."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
from trigger_support import FAST, EngineFactory, Receiver, event_for, eventually, http_trigger

from astraea.core.device_id import random_device_id
from astraea.core.trigger_events import IncomingData
from astraea.storage.base import Storage

SHORT = dataclasses.replace(FAST, lease_interval=0.05, lease_ttl=0.5)


def numbered(n: int) -> IncomingData:
    return IncomingData("org.example.Counter", "/n", n)


async def test_two_engines_deliver_every_event_once(
    start_engine: EngineFactory, receiver: Receiver
) -> None:
    first = await start_engine(SHORT)
    second = await start_engine(SHORT)
    trigger = http_trigger(receiver.respond("/once", 200))
    for n in range(50):
        harness = (first, second)[n % 2]  # announced to both; one holds the queue
        await harness.submit(
            trigger, None, event_for(trigger, numbered(n), device_id=random_device_id())
        )
    requests = await receiver.wait_for("/once", 50)
    await asyncio.sleep(0.3)
    values = sorted(orjson.loads(r.body)["event"]["value"] for r in receiver.at("/once"))
    assert values == list(range(50)) and len(requests) == 50
    assert [first.engine.holds("test", "@default"), second.engine.holds("test", "@default")].count(
        True
    ) <= 1


async def test_a_stopped_engine_hands_its_queue_over(
    start_engine: EngineFactory, receiver: Receiver
) -> None:
    first = await start_engine(SHORT)
    trigger = http_trigger(receiver.respond("/handover", 200, delay=0.05))
    await first.submit_all([(trigger, None, event_for(trigger, numbered(n))) for n in range(20)])
    await receiver.wait_for("/handover", 1)
    await first.engine.stop()
    await start_engine(SHORT)

    def values() -> set[int]:
        return {orjson.loads(r.body)["event"]["value"] for r in receiver.at("/handover")}

    # At least once: a delivery in flight when the first engine stopped may come twice.
    await eventually(lambda: values() == set(range(20)))


async def test_a_dead_engines_lease_is_taken_once_it_expires(
    start_engine: EngineFactory, receiver: Receiver, storage: Storage
) -> None:
    now = time.time_ns() // 1_000_000
    assert await storage.delivery_queue.lease("test", "@default", "dead", now=now, ttl=700)
    engine = await start_engine(SHORT)
    trigger = http_trigger(receiver.respond("/orphan", 200))
    started = time.monotonic()
    await engine.submit(trigger, None, event_for(trigger))
    await receiver.wait_for("/orphan", 1)
    assert time.monotonic() - started >= 0.5  # not before the dead engine's lease ran out
    assert engine.engine.holds("test", "@default")
