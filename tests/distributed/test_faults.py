"""Fault tests: real `astraea serve` processes on PostgreSQL and RabbitMQ, devices on paho over
TLS, and a process killed with SIGKILL (or the broker dropping every connection) while
messages flow. Each checks that no acknowledged message is lost, that each device's order is
kept, that every trigger event of an acknowledged message is delivered, and that the platform
is healthy again without anyone stepping in.

The measured recovery times are printed (run with `-s` to see them).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import bson
import httpx
import pytest
from tests.distributed.conftest import (
    REALM,
    SERVER_COMMANDS,
    VALUES,
    Deployment,
    eventually,
    first_occurrences,
    value_payload,
)
from tests.e2e.mqtt_device import Credentials, MqttDevice

pytestmark = pytest.mark.timeout(240)

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


async def nothing_lost(deployment: Deployment, sender: Sender, timeout: float = 60) -> None:
    """Every acknowledged value is stored, and its trigger event delivered, in order: a
    redelivery after a crash may repeat some, never reorder the first arrivals."""
    acked = sender.acked()

    async def stored() -> bool:
        return set(acked) <= set(await deployment.stored(sender.device_id))

    async def hooked() -> bool:
        return set(acked) <= set(deployment.hooked_values(sender.device_id))

    await eventually(stored, timeout)
    await eventually(hooked, timeout)
    arrivals = first_occurrences(deployment.hooked_values(sender.device_id))
    assert arrivals == sorted(arrivals), f"{sender.device_id}: events out of order"


def counter(metrics: str, name: str) -> float:
    return sum(
        float(value) for value in re.findall(rf"^{name}_total(?:{{.*}})? (\S+)$", metrics, re.M)
    )


async def metric(deployment: Deployment, process: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{deployment.cluster.processes[process].url}/metrics")
    return counter(response.text, name)


async def all_healthy(deployment: Deployment) -> None:
    cluster = deployment.cluster
    await asyncio.gather(
        *(cluster.healthy(p.name) for p in cluster.processes.values() if p.alive())
    )


async def test_killing_an_ingest_worker_under_qos1_load_loses_nothing(
    deployment: Deployment,
) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport", "transport", mqtt=True)
    cluster.add("ingest-1", "ingest")
    cluster.add("ingest-2", "ingest")
    cluster.add("triggers", "triggers")
    await cluster.start_all()
    await deployment.create_realm()
    fleet = await senders(deployment, "transport", 8)

    load = asyncio.gather(*(sender.stream(0, 150) for sender in fleet))

    async def both_working() -> bool:
        counts = [
            await metric(deployment, name, "astraea_ingested_messages")
            for name in ("ingest-1", "ingest-2")
        ]
        return all(counts)

    await eventually(both_working, timeout=30, interval=0.1)
    cluster.kill("ingest-1")
    killed_at = time.monotonic()
    before = {s.device_id: len(await deployment.stored(s.device_id)) for s in fleet}

    async def every_device_progressed() -> bool:
        for sender in fleet:
            if len(await deployment.stored(sender.device_id)) <= before[sender.device_id]:
                return False
        return True

    await eventually(every_device_progressed, timeout=60, interval=0.1)
    takeover = time.monotonic() - killed_at
    await load
    for sender in fleet:
        assert len(sender.acked()) == 150
        await nothing_lost(deployment, sender)
    await all_healthy(deployment)
    print(f"\ningest worker killed: every device's values stored again after {takeover:.1f} s")


async def test_killing_a_transport_node_moves_its_devices_to_another(
    deployment: Deployment,
) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport-a", "transport", mqtt=True)
    cluster.add("transport-b", "transport", mqtt=True)
    cluster.add("ingest", "ingest")
    cluster.add("triggers", "triggers")
    await cluster.start_all()
    await deployment.create_realm()
    credentials = await deployment.paired_device()
    first = await deployment.connect(credentials, "transport-a", clean=False)
    assert await first.subscribe(f"{credentials.root}/{SERVER_COMMANDS}/#", 1) == [1]
    sender = Sender(credentials, first)
    await sender.stream(0, 60)

    cluster.kill("transport-a")
    killed_at = time.monotonic()

    async def marked_disconnected() -> bool:
        return (await deployment.device_status(credentials.device_id))["connected"] is False

    await eventually(marked_disconnected, timeout=40, interval=0.2)
    noticed = time.monotonic() - killed_at

    async def disconnection_hooked() -> bool:
        return any(
            body["device_id"] == credentials.device_id
            for body in deployment.hooked("disconnections")
        )

    await eventually(disconnection_hooked, timeout=20)

    second = MqttDevice(
        deployment.pki(), _port(deployment, "transport-b"), credentials, clean_session=False
    )
    deployment.clients.append(second)
    assert await second.connect() == (0, True)  # the session, stored, moved with the device
    moved = Sender(credentials, second, {})
    await moved.stream(60, 60)
    async with deployment.http() as http:
        sent = await http.post(
            f"/appengine/v1/{REALM}/devices/{credentials.device_id}"
            f"/interfaces/{SERVER_COMMANDS}/command",
            json={"data": "after the move"},
            headers=deployment.realm_keys.headers("appengine"),
        )
    assert sent.status_code == 200, sent.text
    message = await second.next_message()
    assert bson.decode(message.payload) == {"v": "after the move"}
    combined = Sender(credentials, second)
    combined.acked = lambda: sender.acked() + moved.acked()  # type: ignore[method-assign]
    await nothing_lost(deployment, combined)
    assert (await deployment.device_status(credentials.device_id))["connected"] is True
    await all_healthy(deployment)
    print(f"\ntransport node killed: its device marked disconnected after {noticed:.1f} s")


def _port(deployment: Deployment, process: str) -> int:
    port = deployment.cluster.processes[process].mqtt_port
    assert port is not None
    return port


async def test_killing_the_triggers_role_with_deliveries_pending_delivers_them_all(
    deployment: Deployment,
) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport", "transport", mqtt=True)
    cluster.add("ingest", "ingest")
    cluster.add("triggers-1", "triggers")
    cluster.add("triggers-2", "triggers")
    await cluster.start_all()
    deployment.receiver.respond("/hooks/values", 200, delay=0.1)  # a slow receiver: a backlog
    await deployment.create_realm()
    (sender,) = await senders(deployment, "transport", 1)
    await sender.stream(0, 100)

    async def some_delivered() -> bool:
        return len(deployment.hooked_values(sender.device_id)) >= 10

    await eventually(some_delivered)
    delivering = [
        name
        for name in ("triggers-1", "triggers-2")
        if await metric(deployment, name, "astraea_trigger_events_delivered")
    ]
    assert len(delivering) == 1  # one queue, leased by one process
    cluster.kill(delivering[0])
    killed_at = time.monotonic()
    pending = 100 - len(deployment.hooked_values(sender.device_id))
    assert pending > 0
    await nothing_lost(deployment, sender, timeout=90)
    resumed = time.monotonic() - killed_at
    await all_healthy(deployment)
    print(
        f"\ntriggers killed with {pending} deliveries pending: all delivered {resumed:.1f} s later"
    )


async def test_a_broker_connection_drop_loses_nothing_and_heals(deployment: Deployment) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport", "transport", mqtt=True)
    cluster.add("ingest", "ingest")
    cluster.add("triggers", "triggers")
    await cluster.start_all()
    await deployment.create_realm()
    fleet = await senders(deployment, "transport", 3)
    load = asyncio.gather(*(sender.stream(0, 150) for sender in fleet))
    await asyncio.sleep(1.0)
    closed = await deployment.broker.close_all_connections(at_least=len(cluster.processes))
    dropped_at = time.monotonic()
    await load
    healed = time.monotonic() - dropped_at
    for sender in fleet:
        assert len(sender.acked()) == 150
        await nothing_lost(deployment, sender)
    await all_healthy(deployment)
    print(f"\nbroker closed {closed} connections: the load finished {healed:.1f} s later")
