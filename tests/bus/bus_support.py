"""What the bus tests share: a stream, numbered device messages, a recording handler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from astraea.bus.base import Bus, Stream, device_key
from astraea.bus.messages import DeviceMessage, DeviceMessageKind, Published
from astraea.bus.rabbitmq import RabbitMqBus

REALM = "test"
STREAM = Stream("device_messages", DeviceMessage)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


NewBus = Callable[..., Awaitable[RabbitMqBus]]
"""Makes a started RabbitMqBus on the test's vhost; keyword arguments go to its constructor."""


@dataclass
class Backend:
    """A started bus, and how to get the bus of another process on the same medium."""

    name: str
    bus: Bus
    _peer: Callable[[], Awaitable[Bus]] = field(repr=False)

    async def peer(self) -> Bus:
        """Another process's bus: with `inproc` there is only one process, so the same."""
        return await self._peer()


def numbered(device: str, n: int, kind: DeviceMessageKind | None = None) -> DeviceMessage:
    """Message `n` of `device`: a Published whose payload is `n`, unless `kind` is given."""
    kind = kind or Published("/seq", str(n).encode(), 1)
    return DeviceMessage(REALM, device, kind, T0, node=f"node-{n}")


def key_of(message: DeviceMessage) -> str:
    return device_key(message.realm, message.device_id)


def number_of(message: DeviceMessage) -> int:
    return int(message.node.removeprefix("node-"))


@dataclass
class Recorder:
    """A batch handler that records what it was handed, under a name, in a log that several
    consumers may share (the order in which keys were handled across them)."""

    name: str = "consumer"
    log: list[tuple[str, DeviceMessage]] = field(default_factory=list)
    batches: list[list[DeviceMessage]] = field(default_factory=list)
    fail: Callable[[int], bool] = lambda call: False  # by call number, from 0
    delay: float = 0.0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    most_running: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self, batch: Sequence[DeviceMessage]) -> None:
        call = len(self.batches)
        self.batches.append(list(batch))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail(call):
                raise RuntimeError("storage is down")
            self.log.extend((self.name, message) for message in batch)
        finally:
            self.running -= 1

    @property
    def handled(self) -> list[DeviceMessage]:
        """What the handler returned for (so was acknowledged)."""
        return [message for name, message in self.log if name == self.name]


def per_key(log: Sequence[tuple[str, DeviceMessage]]) -> dict[str, list[tuple[str, int]]]:
    """For each key, who handled which number, in the order handled."""
    keys: dict[str, list[tuple[str, int]]] = {}
    for name, message in log:
        keys.setdefault(key_of(message), []).append((name, number_of(message)))
    return keys


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def handlings(log: Sequence[tuple[str, DeviceMessage]]) -> list[tuple[str, str, int]]:
    """A log as `order_violations` reads it: who handled which key's which number."""
    return [(name, key_of(message), number_of(message)) for name, message in log]


def order_violations(
    handled: Sequence[tuple[str, str, int]],
    published: dict[str, int],
    *,
    reconnected: bool = False,
) -> list[str]:
    """What breaks at-least-once, per-key order in `handled` (who, key, number, in the order
    handled) when each key's numbers 0..n-1 were published in order: a lost number, a number
    out of order, or a repeat that is not a redelivery at a handover. A key's numbers may go
    back only when another consumer takes the key over from one that had not acknowledged
    them, or (`reconnected`) when a consumer lost its connection with a batch in hand."""
    problems: list[str] = []
    last: dict[str, tuple[str, int]] = {}
    highest: dict[str, int] = {}
    for who, key, number in handled:
        previous = last.get(key)
        top = highest.get(key, -1)
        if previous is None:
            if number != 0:
                problems.append(f"{key}: starts at {number}")
        elif number != previous[1] + 1 and not (
            number <= top and (reconnected or who != previous[0])
        ):
            problems.append(f"{key}: {number} after {previous[1]} (by {previous[0]}, then {who})")
        last[key] = (who, number)
        highest[key] = max(top, number)
    for key, count in published.items():
        if highest.get(key, -1) != count - 1:
            problems.append(f"{key}: {highest.get(key, -1) + 1} of {count} handled")
    return problems
