"""The broadcast contract, on every backend: every subscriber, in the sender's order."""

from __future__ import annotations

import asyncio
import uuid

from bus_support import Backend, until

from astraea.bus.messages import BroadcastMessage, DeliveriesQueued, TriggersChanged
from astraea.core.trigger_deliveries import QueuedDelivery


def queued(seq: int) -> DeliveriesQueued:
    delivery = QueuedDelivery(seq, "d1", uuid.UUID(int=seq), b"{}", 1, None, 0, 1)
    return DeliveriesQueued("test", "default", (delivery,))


async def test_every_subscriber_of_every_process_gets_every_broadcast_in_order(
    backend: Backend,
) -> None:
    received: dict[str, list[BroadcastMessage]] = {"a": [], "b": [], "c": []}

    def recording(name: str):  # type: ignore[no-untyped-def]
        async def handler(message: BroadcastMessage) -> None:
            received[name].append(message)

        return handler

    await backend.bus.subscribe(recording("a"))
    await backend.bus.subscribe(recording("b"))
    await (await backend.peer()).subscribe(recording("c"))
    sent: list[BroadcastMessage] = [
        queued(n) if n % 2 else TriggersChanged(f"realm-{n}") for n in range(20)
    ]
    for message in sent:
        await backend.bus.broadcast(message)
    await until(lambda: all(len(messages) == len(sent) for messages in received.values()))
    assert received == {"a": sent, "b": sent, "c": sent}


async def test_a_failing_subscriber_fails_neither_the_sender_nor_the_next_broadcasts(
    backend: Backend,
) -> None:
    handled: list[BroadcastMessage] = []

    async def handler(message: BroadcastMessage) -> None:
        if message == TriggersChanged("bad"):
            raise RuntimeError("subscriber bug")
        handled.append(message)

    await (await backend.peer()).subscribe(handler)
    sent = [TriggersChanged("bad"), *(TriggersChanged(f"realm-{n}") for n in range(5))]
    for message in sent:
        await backend.bus.broadcast(message)
    await until(lambda: len(handled) == 5)
    assert handled == sent[1:]


async def test_a_cancelled_subscription_receives_nothing_more(backend: Backend) -> None:
    cancelled: list[BroadcastMessage] = []
    staying: list[BroadcastMessage] = []

    async def record_cancelled(message: BroadcastMessage) -> None:
        cancelled.append(message)

    async def record_staying(message: BroadcastMessage) -> None:
        staying.append(message)

    subscription = await (await backend.peer()).subscribe(record_cancelled)
    await backend.bus.subscribe(record_staying)
    await backend.bus.broadcast(TriggersChanged("before"))
    await until(lambda: len(cancelled) == len(staying) == 1)
    await subscription.cancel()
    await backend.bus.broadcast(TriggersChanged("after"))
    await until(lambda: len(staying) == 2)
    await asyncio.sleep(0.05)
    assert cancelled == [TriggersChanged("before")]
