"""Triggers end to end: a real platform, devices on paho-mqtt over TLS, triggers installed
through Realm Management and their default JSON bodies received by a real HTTP server.

All triggers here deliver through the `@default` queue, which keeps each device's order, so a
device's webhook requests arrive in the order its events happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from astraea.core.device_id import decode_device_id, random_device_id
from astraea.core.values import parse_datetime
from tests.conftest import KeyPair
from tests.e2e.conftest import DeviceSetup
from tests.e2e.mqtt_device import Credentials, MqttDevice, broker_pki, pair, register
from tests.transport.transport_support import Pki
from tests.triggers.trigger_support import Receiver

pytestmark = pytest.mark.timeout(90)

VALUES = "org.astraea.e2e.DeviceValues"
DEVICE_PROPS = "org.astraea.e2e.DeviceProps"
INTROSPECTION = {VALUES: (1, 0), DEVICE_PROPS: (1, 0)}
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def device_trigger(on: str, **fields: Any) -> dict[str, Any]:
    return {"type": "device_trigger", "on": on, **fields}


def data_trigger(
    on: str, interface: str, match_path: str, operator: str = "*", known: object = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "data_trigger",
        "on": on,
        "interface_name": interface,
        "interface_major": 1,
        "match_path": match_path,
        "value_match_operator": operator,
    }
    if operator != "*":
        doc["known_value"] = known
    return doc


@dataclass
class Hooks:
    """The `device` fixture's platform with a webhook receiver, its device paired, and the
    MQTT clients opened (closed at teardown)."""

    setup: DeviceSetup
    receiver: Receiver
    pki: Pki
    paired: Credentials
    directory: Path
    realm_management: dict[str, str]
    agent: dict[str, str]
    clients: list[MqttDevice] = field(default_factory=list)

    @property
    def http(self) -> httpx.AsyncClient:
        return self.setup.http

    async def install(self, name: str, *simple_triggers: dict[str, Any]) -> None:
        """Installs a trigger posting to `/hooks/<name>` on the receiver."""
        trigger = {
            "name": name,
            "action": {"http_url": self.receiver.url(f"/hooks/{name}"), "http_method": "post"},
            "simple_triggers": list(simple_triggers),
        }
        response = await self.http.post(
            f"/realmmanagement/v1/{self.setup.realm}/triggers",
            json={"data": trigger},
            headers=self.realm_management,
        )
        assert response.status_code == 201, response.text

    @staticmethod
    async def take_effect() -> None:
        """Installed and deleted triggers apply to events within a second."""
        await asyncio.sleep(1.0)

    async def delete(self, name: str) -> None:
        response = await self.http.delete(
            f"/realmmanagement/v1/{self.setup.realm}/triggers/{name}",
            headers=self.realm_management,
        )
        assert response.status_code == 204, response.text

    async def connected(self, credentials: Credentials | None = None) -> MqttDevice:
        """A device connected with a clean session that declared `INTROSPECTION`."""
        assert self.setup.platform.mqtt is not None
        device = MqttDevice(self.pki, self.setup.platform.mqtt.port, credentials or self.paired)
        self.clients.append(device)
        assert await device.connect() == (0, False)
        await device.declare(INTROSPECTION)
        return device

    async def another_device(self) -> Credentials:
        device_id = random_device_id()
        secret = await register(self.http, self.setup.realm, device_id, self.agent)
        return await pair(self.http, self.setup.realm, device_id, secret, self.directory)

    async def bodies(self, name: str, count: int) -> list[dict[str, Any]]:
        """The JSON bodies `/hooks/<name>` received, once it received at least `count`."""
        requests = await self.receiver.wait_for(f"/hooks/{name}", count)
        return [orjson.loads(request.body) for request in requests]

    def join_group(self, device_id: str, group: str) -> None:
        """Group membership straight into the database: no API writes groups yet."""
        database = self.setup.platform.settings.data_dir / "astraea.db"
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.execute(
                "INSERT INTO group_members (realm, device_id, group_name, insertion_id)"
                " VALUES (?, ?, ?, 1)",
                (self.setup.realm, decode_device_id(device_id), group),
            )


@pytest.fixture
async def hooks(device: DeviceSetup, realm_keys: KeyPair, tmp_path: Path) -> AsyncIterator[Hooks]:
    assert device.platform.keys is not None
    directory = tmp_path / "devices"
    directory.mkdir()
    receiver = Receiver()
    await receiver.start()
    found = Hooks(
        setup=device,
        receiver=receiver,
        pki=broker_pki(tmp_path / "client-pki", device.platform.keys.mqtt_tls_cert),
        paired=await pair(device.http, device.realm, device.device_id, device.secret, directory),
        directory=directory,
        realm_management=realm_keys.headers("realm-management"),
        agent=realm_keys.headers("pairing"),
    )
    try:
        yield found
    finally:
        for client in found.clients:
            await client.close()
        await receiver.stop()


def without_timestamp(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "timestamp"}


def assert_between(timestamp: str, earliest: datetime, latest: datetime) -> None:
    """Event times are rendered to the millisecond, truncated."""
    moment = parse_datetime(timestamp)
    assert earliest - timedelta(milliseconds=1) <= moment <= latest, (timestamp, earliest, latest)


async def test_device_and_data_events_in_the_order_they_happened(hooks: Hooks) -> None:
    device_id = hooks.paired.device_id
    await hooks.install("connected", device_trigger("device_connected", device_id=device_id))
    await hooks.install("added", device_trigger("interface_added", interface_name="*"))
    await hooks.install("hot", data_trigger("incoming_data", VALUES, "/%{sensor}/value", ">", 20))
    await hooks.install("renamed", data_trigger("value_change", DEVICE_PROPS, "/%{key}/name"))
    await hooks.install("errors", device_trigger("device_error"))
    await hooks.install("disconnected", device_trigger("device_disconnected"))
    await hooks.take_effect()
    before = datetime.now(UTC)

    device = await hooks.connected()
    await device.store(VALUES, "/s1/value", 19.5, T0)
    await device.store(VALUES, "/s1/value", 21.5, T0 + timedelta(seconds=1))
    await device.store(DEVICE_PROPS, "/main/name", "dev1")
    await device.store(DEVICE_PROPS, "/main/name", "dev2")
    await device.send(VALUES, "/s2/value", b"not bson")
    await device.wait_disconnected()

    (disconnected,) = await hooks.bodies("disconnected", 1)
    after = datetime.now(UTC)
    assert [request.path for request in hooks.receiver.requests] == [
        "/hooks/connected",
        "/hooks/added",
        "/hooks/added",
        "/hooks/hot",
        "/hooks/renamed",
        "/hooks/renamed",
        "/hooks/errors",
        "/hooks/disconnected",
    ]
    bodies = [orjson.loads(request.body) for request in hooks.receiver.requests]
    for body in bodies:
        assert list(body) == ["timestamp", "device_id", "event", "trigger_name"]
        assert body["device_id"] == device_id
    connected, added_props, added_values, hot, named, renamed, error, _ = bodies
    for body in (connected, added_props, added_values, named, renamed, error, disconnected):
        assert_between(body["timestamp"], before, after)

    assert without_timestamp(connected) == {
        "device_id": device_id,
        "event": {"type": "device_connected", "device_ip_address": "127.0.0.1"},
        "trigger_name": "connected",
    }
    assert [without_timestamp(body)["event"] for body in (added_props, added_values)] == [
        {
            "type": "interface_added",
            "interface": DEVICE_PROPS,
            "major_version": 1,
            "minor_version": 0,
        },
        {"type": "interface_added", "interface": VALUES, "major_version": 1, "minor_version": 0},
    ]
    assert hot == {
        "timestamp": "2026-01-01T10:00:01.000Z",
        "device_id": device_id,
        "event": {"type": "incoming_data", "interface": VALUES, "path": "/s1/value", "value": 21.5},
        "trigger_name": "hot",
    }
    assert [body["event"] for body in (named, renamed)] == [
        {
            "type": "value_change",
            "interface": DEVICE_PROPS,
            "path": "/main/name",
            "old_value": None,
            "new_value": "dev1",
        },
        {
            "type": "value_change",
            "interface": DEVICE_PROPS,
            "path": "/main/name",
            "old_value": "dev1",
            "new_value": "dev2",
        },
    ]
    assert without_timestamp(error) == {
        "device_id": device_id,
        "event": {
            "type": "device_error",
            "error_name": "undecodable_bson_payload",
            "metadata": {
                "interface": f'"{VALUES}"',
                "path": '"/s2/value"',
                "base64_payload": base64.b64encode(b"not bson").decode(),
            },
        },
        "trigger_name": "errors",
    }
    assert without_timestamp(disconnected) == {
        "device_id": device_id,
        "event": {"type": "device_disconnected"},
        "trigger_name": "disconnected",
    }


async def test_device_registered_through_pairing(hooks: Hooks) -> None:
    await hooks.install("registered", device_trigger("device_registered"))
    await hooks.take_effect()
    before = datetime.now(UTC)
    device_id = random_device_id()
    await register(hooks.http, hooks.setup.realm, device_id, hooks.agent)
    (body,) = await hooks.bodies("registered", 1)
    assert_between(body["timestamp"], before, datetime.now(UTC))
    assert without_timestamp(body) == {
        "device_id": device_id,
        "event": {"type": "device_registered"},
        "trigger_name": "registered",
    }


async def send_for(device: MqttDevice, seconds: float, since: float) -> list[float]:
    """Stores a sample every 50 ms for `seconds`; each value is its time since `since`."""
    sent: list[float] = []
    while (offset := time.monotonic() - since) < seconds:
        await device.store(VALUES, "/s1/value", offset, T0 + timedelta(seconds=len(sent)))
        sent.append(offset)
        await asyncio.sleep(0.05)
    return sent


async def test_installing_and_deleting_apply_to_connected_devices_within_a_second(
    hooks: Hooks,
) -> None:
    await hooks.install("tail", data_trigger("incoming_data", VALUES, "/s9/value"))
    await hooks.take_effect()
    device = await hooks.connected()

    async def evaluated(count: int) -> None:
        """Every sample stored so far was evaluated, once the `tail` one after it was."""
        await device.store(VALUES, "/s9/value", 0.0, T0)
        await hooks.bodies("tail", count)

    await evaluated(1)
    await hooks.install("late", data_trigger("incoming_data", VALUES, "/s1/value"))
    sent = await send_for(device, 1.5, since=time.monotonic())
    await evaluated(2)
    delivered = [body["event"]["value"] for body in await hooks.bodies("late", 1)]
    assert delivered == [offset for offset in sent if offset >= delivered[0]]
    assert delivered[0] < 1.0, f"took effect {delivered[0]:.3f} s after the install"

    await hooks.delete("late")
    sent = await send_for(device, 1.5, since=time.monotonic())
    await evaluated(3)
    after_delete = [body["event"]["value"] for body in await hooks.bodies("late", 1)]
    late = after_delete[len(delivered) :]
    assert late == sent[: len(late)]  # once stopped, it stays stopped
    assert not late or late[-1] < 1.0, f"still fired {late[-1]:.3f} s after the delete"


async def test_group_scoped_trigger_fires_for_members_only(hooks: Hooks) -> None:
    outsider = await hooks.another_device()
    hooks.join_group(hooks.paired.device_id, "floor-1")
    await hooks.install("floor", device_trigger("device_connected", group_name="floor-1"))
    await hooks.install("everyone", device_trigger("device_connected"))
    await hooks.take_effect()

    await hooks.connected()
    await hooks.connected(outsider)

    everyone = await hooks.bodies("everyone", 2)
    assert {body["device_id"] for body in everyone} == {hooks.paired.device_id, outsider.device_id}
    floor = await hooks.bodies("floor", 1)
    await asyncio.sleep(0.3)
    assert [body["device_id"] for body in floor] == [hooks.paired.device_id]
    assert len(hooks.receiver.at("/hooks/floor")) == 1
