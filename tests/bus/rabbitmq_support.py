"""RabbitMQ for the bus tests: whether it is there, and a virtual host of its own per test.

Vhosts are made and deleted through the management API (~10 ms each way) rather than with
`rabbitmqctl add_vhost` / `delete_vhost` (~0.7 s a call, so ~2 s a test); the API also lists
and closes connections, which the connection-loss tests need. `.ci/run` enables the plugin.

When RabbitMQ or its management API is unreachable, a test fails under CI (`CI=true`, where
it must run) and is skipped elsewhere, naming what is missing.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from tests.services import unavailable

AMQP_HOST = "127.0.0.1"
AMQP_PORT = 5672
MANAGEMENT_URL = "http://127.0.0.1:15672/api"
CREDENTIALS = ("guest", "guest")


@functools.cache
def _missing() -> str | None:
    """What is missing, or None when RabbitMQ and its management API answer."""
    try:
        socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2).close()
    except OSError as exc:
        return f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT} is unreachable ({exc})"
    try:
        httpx.get(f"{MANAGEMENT_URL}/overview", auth=CREDENTIALS, timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        return (
            f"the RabbitMQ management API at {MANAGEMENT_URL} is unreachable ({exc}); "
            "enable it with `rabbitmq-plugins enable rabbitmq_management`"
        )
    return None


def require_rabbitmq() -> None:
    missing = _missing()
    if missing is not None:
        unavailable(missing)


class Broker:
    """One test's vhost, and what the tests do to it through the management API."""

    def __init__(self, api: httpx.AsyncClient, vhost: str) -> None:
        self._api = api
        self.vhost = vhost
        self.url = f"amqp://{CREDENTIALS[0]}:{CREDENTIALS[1]}@{AMQP_HOST}:{AMQP_PORT}/{vhost}"

    async def close_connections(self, *names: str) -> None:
        """Closes, as `rabbitmqctl close_connection` would, the connections of these client
        names, once all are listed (the API lists a connection only after its first
        statistics, 2-5 s after it opened)."""
        async with asyncio.timeout(15):
            while not set(names) <= set(listed := await self._listed()):
                await asyncio.sleep(0.2)
        for name in names:
            response = await self._api.delete(
                f"/connections/{listed[name]}", headers={"X-Reason": "test"}
            )
            if response.status_code != 404:  # 404: gone already
                response.raise_for_status()

    async def connection_names(self, at_least: int) -> list[str]:
        """The client names of the vhost's connections, once at least `at_least` are listed
        (for `close_connections`)."""
        async with asyncio.timeout(15):
            while len(listed := await self._listed()) < at_least:
                await asyncio.sleep(0.2)
        return list(listed)

    async def _listed(self) -> dict[str, str]:
        """The vhost's connections: the broker's name of each, by its client name."""
        response = await self._api.get(f"/vhosts/{self.vhost}/connections")
        response.raise_for_status()
        return {
            connection.get("client_properties", {}).get("connection_name", ""): connection["name"]
            for connection in response.json()
        }

    async def allow(self, allowed: bool) -> None:
        """Grants guest the vhost, or takes it away: refused, a reconnection keeps failing,
        which is how a test makes an outage that lasts."""
        path = f"/permissions/{self.vhost}/{CREDENTIALS[0]}"
        if allowed:
            everything = {"configure": ".*", "write": ".*", "read": ".*"}
            response = await self._api.put(path, json=everything)
        else:
            response = await self._api.delete(path)
        response.raise_for_status()


@asynccontextmanager
async def broker_vhost() -> AsyncIterator[Broker]:
    require_rabbitmq()
    vhost = f"test-{uuid.uuid4().hex[:12]}"
    async with httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=CREDENTIALS, timeout=10) as api:
        (await api.put(f"/vhosts/{vhost}")).raise_for_status()
        broker = Broker(api, vhost)
        await broker.allow(True)
        try:
            yield broker
        finally:
            (await api.delete(f"/vhosts/{vhost}")).raise_for_status()
