"""Every role in its own `astraea serve` process on PostgreSQL and RabbitMQ: a device pairs
through the api process, streams through the transport process, is stored by the ingest
process, fires a webhook from the triggers process, and an AppEngine write reaches it back
through the transport node that holds it."""

from __future__ import annotations

import bson
import httpx
import pytest
from tests.distributed.conftest import (
    SERVER_COMMANDS,
    VALUES,
    Deployment,
    eventually,
    value_payload,
)

pytestmark = pytest.mark.timeout(180)


async def test_a_device_crosses_four_processes_and_back(deployment: Deployment) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport", "transport", mqtt=True)
    cluster.add("ingest", "ingest")
    cluster.add("triggers", "triggers")
    await cluster.start_all()
    await deployment.create_realm()
    credentials = await deployment.paired_device()
    device = await deployment.connect(credentials, "transport")

    for index in range(20):
        await device.wait_acked(await device.send(VALUES, "/s/value", value_payload(index), 1))

    expected = [float(index) for index in range(20)]

    async def all_stored() -> bool:
        return await deployment.stored(credentials.device_id) == expected

    async def all_hooked() -> bool:
        return deployment.hooked_values(credentials.device_id) == expected

    await eventually(all_stored)
    await eventually(all_hooked)
    assert (await deployment.device_status(credentials.device_id))["connected"] is True

    assert await device.subscribe(f"{credentials.root}/{SERVER_COMMANDS}/#", 2) == [2]
    sent = await deployment.command(credentials.device_id, "reboot")
    assert sent.status_code == 200, sent.text
    message = await device.next_message()
    assert message.topic == f"{credentials.root}/{SERVER_COMMANDS}/command"
    assert bson.decode(message.payload) == {"v": "reboot"}


async def test_every_process_answers_health_and_metrics_and_only_api_the_apis(
    deployment: Deployment,
) -> None:
    cluster = deployment.cluster
    cluster.add("api", "api")
    cluster.add("transport", "transport", mqtt=True)
    cluster.add("ingest", "ingest")
    cluster.add("triggers", "triggers")
    await cluster.start_all()
    async with httpx.AsyncClient(timeout=10) as http:
        for process in cluster.processes.values():
            assert (await http.get(f"{process.url}/health")).status_code == 200
            metrics = await http.get(f"{process.url}/metrics")
            assert metrics.status_code == 200
            assert "astraea" in metrics.text
            realms = await http.get(f"{process.url}/housekeeping/v1/realms")
            if process.roles == "api":
                assert realms.status_code == 401  # served, and asks for a token
            else:
                assert realms.status_code == 404, process.name
