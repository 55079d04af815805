"""Fixtures for trigger delivery: real SQLite storage, real HTTP receivers, RabbitMQ, engines."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from trigger_support import AMQP_URL, FAST, Directory, EngineFactory, Harness, Receiver

from astraea.bus.inproc import InprocBus
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage
from astraea.tls_material import ensure_server_certificate
from astraea.triggers.engine import EngineSettings, TriggerEngine
from astraea.triggers.metrics import TriggerMetrics


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "astraea.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite://{db_path}")
    await opened.realms.create(Realm(name="test", jwt_public_key_pem="pem"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> TriggerMetrics:
    return TriggerMetrics(registry)


@pytest.fixture
async def bus() -> AsyncIterator[InprocBus]:
    running = InprocBus()
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def start_engine(
    storage: Storage, directory: Directory, metrics: TriggerMetrics, bus: InprocBus
) -> AsyncIterator[EngineFactory]:
    """Starts engines on the test storage (settings default to FAST); stops them afterwards."""
    engines: list[TriggerEngine] = []

    async def start(settings: EngineSettings = FAST, **overrides: Any) -> Harness:
        owner = f"engine-{len(engines)}"
        engine = TriggerEngine(
            storage.delivery_queue, directory, metrics, bus, owner, settings, **overrides
        )
        await engine.start()
        engines.append(engine)
        return Harness(engine, storage, bus, directory)

    yield start
    for engine in engines:
        await engine.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_server_certificate(tmp_path_factory.mktemp("tls"), ("127.0.0.1",))


@pytest.fixture
async def tls_receiver(tls_pair: tuple[Path, Path]) -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start(tls=tls_pair)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """RabbitMQ's URL; a missing broker skips the test, or fails it when CI=true."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError:
        message = "RabbitMQ is not reachable at 127.0.0.1:5672"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AMQP_URL
