from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvloop
from transport_support import ROOT, Pki, RecordingHooks

from astraea.transport.server import MqttServer
from astraea.transport.settings import TransportSettings

StartServer = Callable[..., Awaitable[MqttServer]]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Network tests run on both loops the server supports."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def device_cert(pki: Pki) -> tuple[Path, Path]:
    return pki.client_cert(ROOT)


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
async def start_server(pki: Pki, hooks: RecordingHooks) -> AsyncIterator[StartServer]:
    """Start a server on a free port with settings overrides; all are closed afterwards."""
    servers: list[MqttServer] = []

    async def start(**overrides: Any) -> MqttServer:
        settings = TransportSettings(
            ca_file=pki.ca_file,
            cert_file=pki.server_cert,
            key_file=pki.server_key,
            host="127.0.0.1",
            port=0,
            **overrides,
        )
        server = MqttServer(hooks, settings)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def server(start_server: StartServer) -> MqttServer:
    return await start_server()
