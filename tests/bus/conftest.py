"""The bus contract runs against every backend through `backend`; RabbitMQ-only tests get a
vhost of their own through `broker` and buses on it through `new_bus`."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from bus_support import Backend, NewBus
from rabbitmq_support import Broker, broker_vhost

from astraea.bus.base import Bus
from astraea.bus.inproc import InprocBus
from astraea.bus.rabbitmq import RabbitMqBus

RETRY_DELAY = 0.05


@asynccontextmanager
async def rabbitmq_buses(broker: Broker) -> AsyncIterator[NewBus]:
    """Makes started buses on the broker's vhost (keyword arguments go to RabbitMqBus) and
    closes them all at the end."""
    buses: list[RabbitMqBus] = []
    numbers = itertools.count()

    async def new_bus(**options: Any) -> RabbitMqBus:
        options.setdefault("retry_delay", RETRY_DELAY)
        bus = RabbitMqBus(broker.url, f"test-{next(numbers)}", **options)
        await bus.start()
        buses.append(bus)
        return bus

    try:
        yield new_bus
    finally:
        for bus in buses:
            await bus.close()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with broker_vhost() as vhost:
        yield vhost


@pytest.fixture
async def new_bus(broker: Broker) -> AsyncIterator[NewBus]:
    async with rabbitmq_buses(broker) as factory:
        yield factory


@pytest.fixture(params=["inproc", "rabbitmq"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "inproc":
        bus = InprocBus(retry_delay=RETRY_DELAY)
        await bus.start()

        async def same() -> Bus:
            return bus

        try:
            yield Backend("inproc", bus, same)
        finally:
            await bus.close()
        return
    async with broker_vhost() as vhost, rabbitmq_buses(vhost) as factory:

        async def other() -> Bus:
            return await factory()

        yield Backend("rabbitmq", await factory(), other)
