"""The official Astarte device SDK (PyPI astarte-device-sdk, unchanged) against Astraea.

The SDK runs in its own virtual environment (its `bson` clashes with pymongo's), driven by
tests/sdk/device_driver.py; the platform runs in this test's event loop, so blocking waits on
the driver go through a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sdk_venv import DriverProcess

from astraea.bus.messages import DisconnectCause
from tests.e2e.conftest import DeviceSetup

pytestmark = pytest.mark.timeout(240)

VALUES = "org.astraea.e2e.DeviceValues"
AGGREGATE = "org.astraea.e2e.DeviceAggregate"
DEVICE_PROPS = "org.astraea.e2e.DeviceProps"
SERVER_PROPS = "org.astraea.e2e.ServerProps"
COMMANDS = "org.astraea.e2e.ServerCommands"


async def wait_for(
    driver: DriverProcess, kind: str, timeout: float = 60, **match: Any
) -> dict[str, Any]:
    def where(event: dict[str, Any]) -> bool:
        return all(event.get(k) == v for k, v in match.items())

    return await asyncio.to_thread(driver.wait_for, kind, timeout, where)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def get_data(device: DeviceSetup, interface: str, path: str = "") -> httpx.Response:
    return await device.http.get(device.values_url(interface, path), headers=device.appengine)


async def test_sdk_pairs_streams_and_receives(device: DeviceSetup) -> None:
    driver = DriverProcess.start(
        device.sdk_python,
        device.scenario(
            {"action": "connect"},
            {"action": "wait_connected", "timeout": 30},
            {
                "action": "send",
                "interface": VALUES,
                "path": "/s1/value",
                "value": 21.5,
                "timestamp": "2026-01-01T10:00:00.500Z",
            },
            {
                "action": "send",
                "interface": VALUES,
                "path": "/s1/value",
                "value": 22.25,
                "timestamp": "2026-01-01T10:00:01.000Z",
            },
            {
                "action": "send_aggregate",
                "interface": AGGREGATE,
                "path": "/kitchen",
                "value": {"temperature": 20.5, "label": "warm"},
            },
            {
                "action": "set_property",
                "interface": DEVICE_PROPS,
                "path": "/main/name",
                "value": "dev1",
            },
            {
                "action": "wait_message",
                "interface": SERVER_PROPS,
                "path": "/pump/level",
                "value": 1.5,
                "timeout": 60,
            },
            {
                "action": "wait_message",
                "interface": COMMANDS,
                "path": "/command",
                "value": "reboot",
                "timeout": 60,
            },
            {"action": "disconnect"},
        ),
    )
    with driver:
        await wait_for(driver, "connected")

        async def stored() -> bool:
            response = await get_data(device, VALUES, "/s1/value")
            return response.status_code == 200 and len(response.json()["data"]) == 2

        await eventually(stored)
        samples = (await get_data(device, VALUES, "/s1/value")).json()["data"]
        assert samples == [
            {"timestamp": "2026-01-01T10:00:00.500Z", "value": 21.5},
            {"timestamp": "2026-01-01T10:00:01.000Z", "value": 22.25},
        ]

        async def aggregate_and_property_stored() -> bool:
            aggregate = await get_data(device, AGGREGATE, "/kitchen")
            prop = await get_data(device, DEVICE_PROPS, "/main/name")
            return aggregate.status_code == 200 and prop.status_code == 200

        await eventually(aggregate_and_property_stored)
        rows = (await get_data(device, AGGREGATE, "/kitchen")).json()["data"]
        assert [(r["temperature"], r["label"]) for r in rows] == [(20.5, "warm")]
        assert (await get_data(device, DEVICE_PROPS)).json() == {"data": {"main": {"name": "dev1"}}}

        status = await device.http.get(
            f"/appengine/v1/{device.realm}/devices/{device.device_id}", headers=device.appengine
        )
        assert status.json()["data"]["connected"] is True
        assert VALUES in status.json()["data"]["introspection"]

        prop = await device.http.put(
            device.values_url(SERVER_PROPS, "/pump/level"),
            json={"data": 1.5},
            headers=device.appengine,
        )
        assert prop.status_code == 200, prop.text
        command = await device.http.post(
            device.values_url(COMMANDS, "/command"),
            json={"data": "reboot"},
            headers=device.appengine,
        )
        assert command.status_code == 200, command.text
        result = await asyncio.to_thread(driver.finish, 60)
    assert result.returncode == 0, (result.events, result.stderr)
    received = {(m["interface"], m["path"], m["value"]) for m in result.of("message")}
    assert (SERVER_PROPS, "/pump/level", 1.5) in received
    assert (COMMANDS, "/command", "reboot") in received


async def test_sdk_reconnects_after_broker_disconnect_and_gets_offline_properties(
    device: DeviceSetup,
) -> None:
    first = DriverProcess.start(
        device.sdk_python,
        device.scenario(
            {"action": "connect"},
            {"action": "wait_connected", "timeout": 30},
            {"action": "wait_reconnected", "timeout": 90},
            {"action": "sleep", "seconds": 1},
            {"action": "exit", "code": 0},
        ),
    )
    with first:
        await wait_for(first, "connected", count=1)
        commands, node = device.platform.commands, device.platform.node_name
        assert commands is not None and node is not None
        kick = DisconnectCause.FORCED  # a broker-side kick, as an administrator's
        assert await commands.disconnect(device.realm, device.device_id, kick, node=node)
        await wait_for(first, "connected", timeout=90, count=2)
        result = await asyncio.to_thread(first.finish, 60)
    assert result.returncode == 0, (result.events, result.stderr)

    # while the device is offline, the application sets a server-owned property
    async def offline() -> bool:
        status = await device.http.get(
            f"/appengine/v1/{device.realm}/devices/{device.device_id}", headers=device.appengine
        )
        return status.json()["data"]["connected"] is False

    await eventually(offline)
    prop = await device.http.put(
        device.values_url(SERVER_PROPS, "/valve/level"),
        json={"data": 0.25},
        headers=device.appengine,
    )
    assert prop.status_code == 200, prop.text

    second = DriverProcess.start(
        device.sdk_python,
        device.scenario(
            {"action": "connect"},
            {"action": "wait_connected", "timeout": 30},
            {
                "action": "wait_message",
                "interface": SERVER_PROPS,
                "path": "/valve/level",
                "value": 0.25,
                "timeout": 60,
            },
            {"action": "disconnect"},
        ),
    )
    with second:
        result = await asyncio.to_thread(second.finish, 90)
    assert result.returncode == 0, (result.events, result.stderr)
