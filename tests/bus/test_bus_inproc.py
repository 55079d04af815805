"""What only the in-process bus does: `publish` returns once the consumer's handler returned
(its commit is what makes a message durable there), whatever arrives while a batch is being
handled forms the next batch (group commit), and one active consumer takes every key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from bus_support import STREAM, Recorder, key_of, numbered, until

from astraea.bus.inproc import InprocBus


@pytest.fixture
async def bus() -> AsyncIterator[InprocBus]:
    running = InprocBus(retry_delay=0.01)
    await running.start()
    yield running
    await running.close()


def publishing(bus: InprocBus, *numbers: int) -> list[asyncio.Future[None]]:
    return [
        asyncio.ensure_future(bus.publish(STREAM, key_of(numbered("d1", n)), numbered("d1", n)))
        for n in numbers
    ]


async def test_publish_returns_once_the_handler_returned(bus: InprocBus) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    await bus.consume(STREAM, recorder)
    [published] = publishing(bus, 0)
    await until(lambda: len(recorder.batches) == 1)
    await asyncio.sleep(0.02)
    assert not published.done()
    recorder.gate.set()
    await published
    assert len(recorder.handled) == 1


async def test_what_arrives_while_a_batch_is_handled_is_the_next_batch_in_order(
    bus: InprocBus,
) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    await bus.consume(STREAM, recorder)
    first = publishing(bus, 0)
    await until(lambda: len(recorder.batches) == 1)
    rest = publishing(bus, 1, 2, 3, 4)
    await asyncio.sleep(0.02)
    assert recorder.running == 1  # one batch at a time
    recorder.gate.set()
    await asyncio.gather(*first, *rest)
    assert [[m.node for m in batch] for batch in recorder.batches] == [
        ["node-0"],
        ["node-1", "node-2", "node-3", "node-4"],
    ]
    assert recorder.most_running == 1


async def test_a_failing_batch_holds_its_publishers_until_it_is_handled(bus: InprocBus) -> None:
    recorder = Recorder(fail=lambda call: call < 3)
    await bus.consume(STREAM, recorder)
    await asyncio.gather(*publishing(bus, 0))
    assert len(recorder.batches) == 4
    assert [m.node for m in recorder.handled] == ["node-0"]


async def test_one_consumer_takes_every_key_and_the_others_stand_by(bus: InprocBus) -> None:
    active, standby = Recorder("active"), Recorder("standby")
    subscription = await bus.consume(STREAM, active)
    await bus.consume(STREAM, standby)
    await asyncio.gather(
        *(bus.publish(STREAM, key_of(m), m) for m in (numbered(f"d{d}", 0) for d in range(10)))
    )
    assert len(active.handled) == 10
    assert standby.handled == []
    await subscription.cancel()
    await asyncio.gather(*publishing(bus, 1))
    assert [m.node for m in standby.handled] == ["node-1"]


async def test_closing_fails_the_publishers_still_waiting_and_later_ones(bus: InprocBus) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    await bus.consume(STREAM, recorder)
    waiting = publishing(bus, 0)
    await until(lambda: len(recorder.batches) == 1)
    waiting += publishing(bus, 1, 2)
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(bus.close())
    await asyncio.sleep(0.01)
    recorder.gate.set()  # the batch in hand is finished: its publisher is answered
    await closing
    await waiting[0]
    for future in waiting[1:]:
        with pytest.raises(ConnectionAbortedError):
            await future
    with pytest.raises(ConnectionAbortedError):
        await bus.publish(STREAM, "test/d1", numbered("d1", 3))
