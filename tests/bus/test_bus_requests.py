"""The request contract, on every backend: a command to one endpoint, and its reply."""

from __future__ import annotations

import asyncio
import time

import pytest
from bus_support import Backend

from astraea.bus.base import EndpointTaken, EndpointUnavailable, RequestTimeout
from astraea.bus.messages import (
    Command,
    CommandResult,
    CommandStatus,
    DisconnectCause,
    DisconnectDevice,
    PublishToDevice,
)

PUBLISH = PublishToDevice("test", "d1", "test/d1/com.example.Lights/on", b"\x01", 1)
DISCONNECT = DisconnectDevice("test", "d1", DisconnectCause.TAKEN_OVER)


async def done(command: Command) -> CommandResult:
    return CommandResult(CommandStatus.DONE)


async def test_each_command_reaches_the_server_as_sent_and_its_result_comes_back(
    backend: Backend,
) -> None:
    received: list[Command] = []

    async def handler(command: Command) -> CommandResult:
        received.append(command)
        if isinstance(command, PublishToDevice):
            return CommandResult(CommandStatus.DONE)
        return CommandResult(CommandStatus.NOT_HERE)

    await (await backend.peer()).serve("node-a", handler)
    assert await backend.bus.request("node-a", PUBLISH, timeout=5) == CommandResult(
        CommandStatus.DONE
    )
    assert await backend.bus.request("node-a", DISCONNECT, timeout=5) == CommandResult(
        CommandStatus.NOT_HERE
    )
    assert received == [PUBLISH, DISCONNECT]


async def test_requests_are_handled_concurrently(backend: Backend) -> None:
    second_arrived = asyncio.Event()
    calls = 0

    async def handler(command: Command) -> CommandResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            await second_arrived.wait()  # only returns if the second is handled meanwhile
        else:
            second_arrived.set()
        return CommandResult(CommandStatus.DONE)

    await (await backend.peer()).serve("node-a", handler)
    results = await asyncio.gather(
        backend.bus.request("node-a", PUBLISH, timeout=5),
        backend.bus.request("node-a", DISCONNECT, timeout=5),
    )
    assert list(results) == [CommandResult(CommandStatus.DONE)] * 2


async def test_an_endpoint_nobody_serves_is_unavailable_at_once(backend: Backend) -> None:
    started = time.monotonic()
    with pytest.raises(EndpointUnavailable):
        await backend.bus.request("node-nobody", PUBLISH, timeout=10)
    assert time.monotonic() - started < 1


async def test_a_server_that_does_not_answer_in_time_times_out(backend: Backend) -> None:
    async def slow(command: Command) -> CommandResult:
        await asyncio.sleep(5)
        return CommandResult(CommandStatus.DONE)

    await (await backend.peer()).serve("node-slow", slow)
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await backend.bus.request("node-slow", PUBLISH, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2


async def test_an_endpoint_has_one_server_until_it_cancels(backend: Backend) -> None:
    serving = await backend.bus.serve("node-a", done)
    with pytest.raises(EndpointTaken):
        await (await backend.peer()).serve("node-a", done)
    with pytest.raises(EndpointTaken):
        await backend.bus.serve("node-a", done)
    await serving.cancel()
    await (await backend.peer()).serve("node-a", done)
    assert await backend.bus.request("node-a", PUBLISH, timeout=5) == CommandResult(
        CommandStatus.DONE
    )


async def test_a_cancelled_server_is_unavailable(backend: Backend) -> None:
    serving = await (await backend.peer()).serve("node-a", done)
    await backend.bus.request("node-a", PUBLISH, timeout=5)
    await serving.cancel()
    with pytest.raises(EndpointUnavailable):
        await backend.bus.request("node-a", PUBLISH, timeout=5)
