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

import bson
import httpx
import pytest
from tests.distributed.conftest import (
    SERVER_COMMANDS,
    Deployment,
    Sender,
    eventually,
    nothing_lost,
    senders,
)
from tests.e2e.mqtt_device import MqttDevice

pytestmark = pytest.mark.timeout(240)


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
        await nothing_lost(deployment, sender.device_id, sender.acked())
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
    moved = Sender(credentials, second)
    await moved.stream(60, 60)
    sent = await deployment.command(credentials.device_id, "after the move")
    assert sent.status_code == 200, sent.text
    message = await second.next_message()
    assert bson.decode(message.payload) == {"v": "after the move"}
    await nothing_lost(deployment, credentials.device_id, sender.acked() + moved.acked())
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
    await nothing_lost(deployment, sender.device_id, sender.acked(), timeout=90)
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
    connections = await deployment.broker.connection_names(at_least=len(cluster.processes))
    load = asyncio.gather(*(sender.stream(0, 300) for sender in fleet))
    await asyncio.sleep(1.0)
    await deployment.broker.close_connections(*connections)
    dropped_at = time.monotonic()
    assert not load.done()
    await load
    healed = time.monotonic() - dropped_at
    for sender in fleet:
        assert len(sender.acked()) == 300
        await nothing_lost(deployment, sender.device_id, sender.acked())
    await all_healthy(deployment)
    print(f"\nbroker closed {len(connections)} connections: the load finished {healed:.1f} s later")
