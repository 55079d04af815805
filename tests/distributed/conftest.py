"""A distributed deployment per test: its own PostgreSQL schema, RabbitMQ vhost and data
folder, `astraea serve` processes started by the test, a realm with the end-to-end
interfaces, a webhook receiver and paired devices on paho-mqtt over TLS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.bus.rabbitmq_support import Broker, broker_vhost
from tests.conftest import KeyPair
from tests.distributed.cluster import Cluster
from tests.e2e.conftest import INTERFACES
from tests.e2e.mqtt_device import Credentials, MqttDevice, broker_pki, pair, register
from tests.ingest.ingest_support import bson_value
from tests.services import postgres_schema
from tests.transport.transport_support import Pki
from tests.triggers.trigger_support import Receiver

from astraea.core.device_id import random_device_id

REALM = "fleet"
VALUES = "org.astraea.e2e.DeviceValues"
SERVER_COMMANDS = "org.astraea.e2e.ServerCommands"
INTROSPECTION = {VALUES: (1, 0), SERVER_COMMANDS: (1, 0)}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30, interval: float = 0.2
) -> float:
    """Waits until `check` holds; returns how long that took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


@dataclass
class Deployment:
    """A cluster whose processes the test adds and starts, and what a user of it holds."""

    cluster: Cluster
    broker: Broker
    realm_keys: KeyPair
    housekeeping: KeyPair
    receiver: Receiver
    directory: Path
    clients: list[MqttDevice] = field(default_factory=list)
    _pki: Pki | None = None

    def http(self) -> httpx.AsyncClient:
        """A client of the (first running) api process."""
        return httpx.AsyncClient(base_url=self.cluster.api().url, timeout=30)

    async def create_realm(self) -> None:
        """The realm, the end-to-end interfaces and a webhook trigger for every value."""
        async with self.http() as http:
            created = await http.post(
                "/housekeeping/v1/realms",
                json={
                    "data": {"realm_name": REALM, "jwt_public_key_pem": self.realm_keys.public_pem}
                },
                headers=self.housekeeping.headers("housekeeping"),
            )
            assert created.status_code == 201, created.text
            rm = self.realm_keys.headers("realm-management")
            for interface in INTERFACES:
                response = await http.post(
                    f"/realmmanagement/v1/{REALM}/interfaces", json={"data": interface}, headers=rm
                )
                assert response.status_code == 201, response.text
            for name, simple in {
                "values": {
                    "type": "data_trigger",
                    "on": "incoming_data",
                    "interface_name": VALUES,
                    "interface_major": 1,
                    "match_path": "/*",
                    "value_match_operator": "*",
                },
                "disconnections": {"type": "device_trigger", "on": "device_disconnected"},
            }.items():
                trigger = {
                    "name": name,
                    "action": {
                        "http_url": self.receiver.url(f"/hooks/{name}"),
                        "http_method": "post",
                    },
                    "simple_triggers": [simple],
                }
                response = await http.post(
                    f"/realmmanagement/v1/{REALM}/triggers", json={"data": trigger}, headers=rm
                )
                assert response.status_code == 201, response.text

    async def paired_device(self) -> Credentials:
        device_id = random_device_id()
        async with self.http() as http:
            secret = await register(http, REALM, device_id, self.realm_keys.headers("pairing"))
            return await pair(http, REALM, device_id, secret, self.directory)

    def pki(self) -> Pki:
        if self._pki is None:
            self._pki = broker_pki(self.directory / "client-pki", self.cluster.broker_cert())
        return self._pki

    async def connect(
        self, credentials: Credentials, transport: str, *, clean: bool = True
    ) -> MqttDevice:
        """A device connected to that transport process, its introspection declared."""
        port = self.cluster.processes[transport].mqtt_port
        assert port is not None
        device = MqttDevice(self.pki(), port, credentials, clean_session=clean)
        self.clients.append(device)
        code, _present = await device.connect()
        assert code == 0
        await device.declare(INTROSPECTION)
        return device

    async def stored(self, device_id: str, sensor: str = "s") -> list[float]:
        """The values stored for the device's sensor, in timestamp order."""
        async with self.http() as http:
            response = await http.get(
                f"/appengine/v1/{REALM}/devices/{device_id}/interfaces/{VALUES}/{sensor}/value",
                headers=self.realm_keys.headers("appengine"),
            )
        if response.status_code == 404:
            return []
        assert response.status_code == 200, response.text
        return [sample["value"] for sample in response.json()["data"]]

    async def command(self, device_id: str, text: str) -> httpx.Response:
        """An AppEngine write of the server-owned command, answered once it was sent."""
        async with self.http() as http:
            return await http.post(
                f"/appengine/v1/{REALM}/devices/{device_id}/interfaces/{SERVER_COMMANDS}/command",
                json={"data": text},
                headers=self.realm_keys.headers("appengine"),
            )

    async def device_status(self, device_id: str) -> dict[str, Any]:
        async with self.http() as http:
            response = await http.get(
                f"/appengine/v1/{REALM}/devices/{device_id}",
                headers=self.realm_keys.headers("appengine"),
            )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def hooked(self, name: str) -> list[dict[str, Any]]:
        return [orjson.loads(request.body) for request in self.receiver.at(f"/hooks/{name}")]

    def hooked_values(self, device_id: str) -> list[float]:
        return [
            body["event"]["value"]
            for body in self.hooked("values")
            if body["device_id"] == device_id
        ]


WINDOW = 5  # messages sent before waiting for their PUBACKs
PACE = 0.04  # seconds between windows: a few seconds of load per device


@dataclass
class Sender:
    """One device streaming values 0, 1, 2, ... at QoS 1; `acked` are the values whose
    PUBACK arrived."""

    credentials: Credentials
    device: MqttDevice
    sent: dict[int, int] = field(default_factory=dict)  # value -> message id

    @property
    def device_id(self) -> str:
        return self.credentials.device_id

    async def stream(self, start: int, count: int) -> None:
        for first in range(start, start + count, WINDOW):
            window = range(first, min(first + WINDOW, start + count))
            for index in window:
                self.sent[index] = await self.device.send(
                    VALUES, "/s/value", value_payload(index), 1
                )

            async def window_acked(window: range = window) -> bool:
                return all(self.sent[index] in self.device.acked for index in window)

            await eventually(window_acked, timeout=60, interval=0.01)
            await asyncio.sleep(PACE)

    def acked(self) -> list[float]:
        return sorted(float(i) for i, mid in self.sent.items() if mid in self.device.acked)


async def senders(deployment: Deployment, transport: str, count: int) -> list[Sender]:
    found = []
    for _ in range(count):
        credentials = await deployment.paired_device()
        found.append(Sender(credentials, await deployment.connect(credentials, transport)))
    return found


async def nothing_lost(
    deployment: Deployment, device_id: str, acked: list[float], timeout: float = 60
) -> None:
    """Every acknowledged value of the device is stored, and its trigger event delivered, in
    order: a redelivery after a crash may repeat some, never reorder the first arrivals."""

    async def stored() -> bool:
        return set(acked) <= set(await deployment.stored(device_id))

    async def hooked() -> bool:
        return set(acked) <= set(deployment.hooked_values(device_id))

    await eventually(stored, timeout)
    await eventually(hooked, timeout)
    arrivals = first_occurrences(deployment.hooked_values(device_id))
    assert arrivals == sorted(arrivals), f"{device_id}: events out of order"


def value_payload(index: int) -> bytes:
    """Value `index` with a timestamp that puts it in sending order."""
    return bson_value(float(index), T0 + timedelta(milliseconds=index))


def first_occurrences(values: list[float]) -> list[float]:
    """Values in the order they first arrived: a redelivery after a crash repeats a tail."""
    seen: set[float] = set()
    order = []
    for value in values:
        if value not in seen:
            seen.add(value)
            order.append(value)
    return order


@pytest.fixture
async def deployment(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> AsyncIterator[Deployment]:
    receiver = Receiver()
    await receiver.start()
    directory = tmp_path / "devices"
    directory.mkdir()
    async with postgres_schema() as database_url, broker_vhost() as broker:
        (tmp_path / "cluster").mkdir()
        cluster = Cluster(tmp_path / "cluster", database_url, broker.url, housekeeping_keys)
        found = Deployment(cluster, broker, realm_keys, housekeeping_keys, receiver, directory)
        try:
            yield found
        finally:
            for client in found.clients:
                await client.close()
            cluster.stop()
            await receiver.stop()
