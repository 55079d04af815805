"""The Pairing and AppEngine CLI groups, as processes against a running platform, with a device
that the CLI registers and that then streams over real MQTT (paho, with the certificate Pairing
issues for the secret the CLI printed)."""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import bson
import httpx
import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from test_api_cli import STANDARD, Cli
from tests.conftest import KeyPair

from astraea.core.device_id import random_device_id
from astraea.platform import Platform

REALM = "test"
VALUES = "org.astarte-platform.genericsensors.Values"
GEO = "org.astarte-platform.genericsensors.Geolocation"
SENSORS = "org.astarte-platform.genericsensors.AvailableSensors"
RATE = "org.astarte-platform.genericsensors.SamplingRate"
COMMANDS = "org.astraea.cli.Commands"
SERVER_COMMANDS = "org.astarte-platform.genericcommands.ServerCommands"  # unreliable
COMMANDS_INTERFACE = {
    "interface_name": COMMANDS,
    "version_major": 0,
    "version_minor": 1,
    "type": "datastream",
    "ownership": "server",
    "mappings": [{"endpoint": "/command", "type": "string", "reliability": "unique"}],
}
INTROSPECTION = (
    f"{VALUES}:1:0;{GEO}:1:0;{SENSORS}:1:0;{RATE}:1:0;{COMMANDS}:0:1;{SERVER_COMMANDS}:0:1"
)
T1 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
GPS = {
    "latitude": 45.5,
    "longitude": 9.25,
    "altitude": 120.0,
    "accuracy": 5.0,
    "altitudeAccuracy": 8.0,
    "heading": 0.0,
    "speed": 1.5,
}
WAIT = 30.0
PAIRING = ("pairing", "--realm", REALM, "--private-key", "realm.pem")
DEVICES = ("appengine", "--realm", REALM, "--private-key", "realm.pem", "devices")


async def _poll(ready: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await ready():
        assert asyncio.get_running_loop().time() < deadline, f"{what} not reached in time"
        await asyncio.sleep(0.02)


def _api(platform: Platform) -> httpx.AsyncClient:
    """A client for one use: the server may close a shared client's idle keep-alive
    connection while CLI processes run, failing its next request."""
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.http_port}")


class MqttDevice:
    """A device on the platform's broker, authenticated by the certificate Pairing signs for
    its credentials secret; it receives what is published on its server-owned interfaces."""

    def __init__(self, platform: Platform, device_id: str) -> None:
        self.platform = platform
        self.device_id = device_id
        self.root = f"{REALM}/{device_id}"
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, m.payload))

    async def connect(self, secret: str, folder: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.root)])
        csr = (
            x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        )
        async with _api(self.platform) as http:
            response = await http.post(
                f"/pairing/v1/{REALM}/devices/{self.device_id}/protocols/astarte_mqtt_v1/credentials",
                json={"data": {"csr": csr.public_bytes(serialization.Encoding.PEM).decode()}},
                headers={"Authorization": f"Bearer {secret}"},
            )
        assert response.status_code == 201, response.text
        (folder / "device.crt").write_text(response.json()["data"]["client_crt"])
        (folder / "device.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        assert self.platform.keys is not None and self.platform.mqtt is not None
        self.client.tls_set(
            ca_certs=str(self.platform.keys.mqtt_tls_cert),
            certfile=str(folder / "device.crt"),
            keyfile=str(folder / "device.key"),
        )
        # The broker runs in this event loop: connect in paho's thread and poll, never block.
        self.client.connect_async("localhost", self.platform.mqtt.port)
        self.client.loop_start()
        await _poll(self._connected, "MQTT connection")
        for interface in (RATE, COMMANDS):
            self.client.subscribe(f"{self.root}/{interface}/#", qos=2)
        self.publish("", INTROSPECTION.encode())
        self.publish("/control/emptyCache", b"1")

    async def _connected(self) -> bool:
        return self.client.is_connected()

    def publish(self, suffix: str, payload: bytes) -> None:
        self.client.publish(self.root + suffix, payload, qos=2)

    def send(self, interface: str, path: str, value: object, at: datetime | None = None) -> None:
        document: dict[str, object] = {"v": value} if at is None else {"v": value, "t": at}
        self.publish(f"/{interface}{path}", bson.encode(document))

    async def next_message(self) -> tuple[str, bytes]:
        deadline = asyncio.get_running_loop().time() + WAIT
        while self.received.empty():
            assert asyncio.get_running_loop().time() < deadline, "nothing received in time"
            await asyncio.sleep(0.02)
        return self.received.get_nowait()

    async def disconnect(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@pytest.fixture
async def cli(
    platform: Platform, http: httpx.AsyncClient, realm: str, realm_keys: KeyPair, tmp_path: Path
) -> Cli:
    """The CLI of a realm with five standard interfaces and a `unique` server datastream."""
    documents = [
        json.loads((STANDARD / f"{name}.json").read_text())
        for name in (VALUES, GEO, SENSORS, RATE, SERVER_COMMANDS)
    ]
    for document in [*documents, COMMANDS_INTERFACE]:
        response = await http.post(
            f"/realmmanagement/v1/{realm}/interfaces",
            json={"data": document},
            headers=realm_keys.headers("realm-management"),
        )
        assert response.status_code == 201, response.text
    (tmp_path / "realm.pem").write_text(realm_keys.private_pem)
    return Cli(f"http://127.0.0.1:{platform.http_port}", tmp_path)


@pytest.fixture
async def device(
    cli: Cli, platform: Platform, realm_keys: KeyPair, tmp_path: Path
) -> AsyncIterator[MqttDevice]:
    """A device the CLI registered, connected, with samples, an object and properties stored."""
    device_id = random_device_id()
    code, out, err = await cli(
        *PAIRING, "agent", "register", device_id, "--introspection", INTROSPECTION
    )
    assert (code, err) == (0, ""), err
    secret = out.strip()
    assert out == secret + "\n" and len(secret) == 44
    mqtt = MqttDevice(platform, device_id)
    await mqtt.connect(secret, tmp_path)
    mqtt.send(VALUES, "/s1/value", 21.5, T1)
    mqtt.send(VALUES, "/s1/value", 22.0, T2)
    mqtt.send(VALUES, "/s2/value", 3.0, T1)
    mqtt.send(GEO, "/gps", GPS, T2)
    mqtt.send(SENSORS, "/s1/name", "Kitchen")
    mqtt.send(SENSORS, "/s1/unit", "°C")
    headers = realm_keys.headers("appengine")
    base = f"/appengine/v1/{REALM}/devices/{device_id}/interfaces"

    async def stored() -> bool:
        async with _api(platform) as http:
            gps = await http.get(f"{base}/{GEO}/gps", headers=headers)
            sensors = await http.get(f"{base}/{SENSORS}", headers=headers)
        return gps.status_code == 200 and sensors.json()["data"] == {
            "s1": {"name": "Kitchen", "unit": "°C"}
        }

    # Published in order, so the last object and property being stored means all the rest are.
    await _poll(stored, "ingestion")
    try:
        yield mqtt
    finally:
        await mqtt.disconnect()


def _table(out: str) -> list[list[str]]:
    """The cells of each body row of a rich table."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


async def test_device_status_and_listing(cli: Cli, device: MqttDevice) -> None:
    code, out, err = await cli(*DEVICES, "list")
    assert (code, err, out.split()) == (0, "", [device.device_id])
    code, out, _ = await cli(*DEVICES, "list", "--details")
    assert _table(out)[0][:2] == [device.device_id, "true"]
    code, out, _ = await cli(*DEVICES, "list", "--details", "--json")
    assert json.loads(out)[0]["id"] == device.device_id

    code, out, _ = await cli(*DEVICES, "show", device.device_id)
    status = json.loads(out)
    assert status["connected"] is True
    assert sorted(status["introspection"]) == sorted(
        [VALUES, GEO, SENSORS, RATE, COMMANDS, SERVER_COMMANDS]
    )

    code, out, err = await cli(
        *PAIRING, "device", "info", device.device_id, "--secret", "not-the-secret"
    )
    assert (code, err.strip()) == (
        1,
        f"Error: GET /pairing/v1/{REALM}/devices/{device.device_id}: 403 Forbidden",
    )


async def test_reading_samples_and_snapshot(
    cli: Cli, device: MqttDevice, platform: Platform
) -> None:
    dev = device.device_id
    code, out, err = await cli(*DEVICES, "get-samples", dev, VALUES, "/s1/value")
    assert (code, err) == (0, ""), err
    assert _table(out) == [
        ["2024-05-01T10:00:00.000Z", "21.5"],
        ["2024-05-01T10:01:00.000Z", "22.0"],
    ]
    code, out, _ = await cli(
        *DEVICES, "get-samples", dev, VALUES, "s1/value", "--limit", "1", "--json"
    )
    assert json.loads(out) == [{"timestamp": "2024-05-01T10:01:00.000Z", "value": 22.0}]
    code, out, _ = await cli(
        *DEVICES, "get-samples", dev, VALUES, "/s1/value", "--since", "2024-05-01T10:00:30Z"
    )
    assert [row[1] for row in _table(out)] == ["22.0"]
    code, out, _ = await cli(*DEVICES, "get-samples", dev, GEO, "/gps")
    assert "altitudeAccuracy" in out and _table(out)[0][:3] == [
        "2024-05-01T10:01:00.000Z",
        "45.5",
        "9.25",
    ]

    # Pages of one sample: the CLI follows links.next to the end of the list.
    assert platform.api_context is not None
    platform.api_context.settings.appengine_max_results_limit = 1
    code, out, err = await cli(*DEVICES, "get-samples", dev, VALUES, "/s1/value", "--json")
    assert (code, err) == (0, ""), err
    assert [s["value"] for s in json.loads(out)] == [21.5, 22.0]

    code, out, err = await cli(*DEVICES, "data-snapshot", dev, "--json")
    assert (code, err) == (0, ""), err
    assert json.loads(out) == [
        {"interface": SENSORS, "path": "/s1/name", "value": "Kitchen", "timestamp": None},
        {"interface": SENSORS, "path": "/s1/unit", "value": "°C", "timestamp": None},
        {"interface": GEO, "path": "/gps", "value": GPS, "timestamp": "2024-05-01T10:01:00.000Z"},
        {
            "interface": VALUES,
            "path": "/s1/value",
            "value": 22.0,
            "timestamp": "2024-05-01T10:01:00.000Z",
        },
        {
            "interface": VALUES,
            "path": "/s2/value",
            "value": 3.0,
            "timestamp": "2024-05-01T10:00:00.000Z",
        },
    ]
    code, out, _ = await cli(*DEVICES, "data-snapshot", dev, VALUES)
    assert _table(out) == [
        [VALUES, "/s1/value", "22.0", "2024-05-01T10:01:00.000Z"],
        [VALUES, "/s2/value", "3.0", "2024-05-01T10:00:00.000Z"],
    ]


async def test_sending_to_connected_and_disconnected_device(cli: Cli, device: MqttDevice) -> None:
    dev = device.device_id
    code, out, err = await cli(*DEVICES, "set-property", dev, RATE, "/s1/samplingPeriod", "10")
    assert (code, err, out) == (0, "", f"Set {RATE}/s1/samplingPeriod.\n")
    topic, payload = await device.next_message()
    assert (topic, bson.decode(payload)) == (f"{device.root}/{RATE}/s1/samplingPeriod", {"v": 10})

    code, out, err = await cli(*DEVICES, "send-data", dev, COMMANDS, "/command", "reboot")
    assert (code, err) == (0, ""), err
    topic, payload = await device.next_message()
    assert (topic, bson.decode(payload)) == (f"{device.root}/{COMMANDS}/command", {"v": "reboot"})
    # `42` would be a number; --type string sends it as the string the mapping wants.
    code, _, err = await cli(
        *DEVICES, "send-data", dev, COMMANDS, "/command", "42", "--type", "string"
    )
    assert (code, err) == (0, ""), err
    assert bson.decode((await device.next_message())[1]) == {"v": "42"}

    code, out, err = await cli(*DEVICES, "unset-property", dev, RATE, "/s1/samplingPeriod")
    assert (code, err, out) == (0, "", f"Unset {RATE}/s1/samplingPeriod.\n")
    assert await device.next_message() == (f"{device.root}/{RATE}/s1/samplingPeriod", b"")

    await device.disconnect()

    async def disconnected() -> bool:
        _, out, _ = await cli(*DEVICES, "show", dev)
        return json.loads(out)["connected"] is False

    await _poll(disconnected, "disconnection")
    # an unreliable value finds no connection and no queue: the CLI says so instead of "Sent"
    code, out, err = await cli(*DEVICES, "send-data", dev, SERVER_COMMANDS, "/command", "reboot")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: not delivered: device {dev} is not connected")
    assert "dropped" in err
    code, out, err = await cli(*DEVICES, "send-data", dev, COMMANDS, "/command", "reboot")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: POST /appengine/v1/{REALM}/devices/{dev}/interfaces/{COMMANDS}/command: "
        "503 Cannot push to device\n"
    )
    # A property waits for the device's next session; negative numbers are values, not options.
    code, _, err = await cli(*DEVICES, "set-property", dev, RATE, "/s1/samplingPeriod", "-5")
    assert (code, err) == (0, ""), err
    code, out, _ = await cli(*DEVICES, "data-snapshot", dev, RATE)
    assert _table(out) == [[RATE, "/s1/samplingPeriod", "-5", ""]]

    code, out, err = await cli(*PAIRING, "agent", "unregister", dev)
    assert (code, err, out) == (0, "", f"Device {dev} unregistered.\n")


async def test_alias_and_register_options(
    cli: Cli, platform: Platform, realm: str, realm_keys: KeyPair
) -> None:
    dev = random_device_id()
    code, out, err = await cli(*PAIRING, "agent", "register", dev, "--introspection", f"{RATE}:1:0")
    assert (code, err) == (0, ""), err
    code, out, _ = await cli(*PAIRING, "device", "info", dev, "--secret", out.strip())
    assert json.loads(out)["status"] == "pending"
    async with _api(platform) as http:
        response = await http.patch(
            f"/appengine/v1/{realm}/devices/{dev}",
            json={"data": {"aliases": {"name": "boiler room"}}},
            headers={
                **realm_keys.headers("appengine"),
                "Content-Type": "application/merge-patch+json",
            },
        )
    assert response.status_code == 200, response.text

    code, out, _ = await cli(*DEVICES, "show", "boiler room", "--alias")
    assert json.loads(out)["introspection"] == {
        RATE: {"major": 1, "minor": 0, "exchanged_msgs": 0, "exchanged_bytes": 0}
    }
    code, _, err = await cli(
        *DEVICES, "set-property", "boiler room", RATE, "/s1/enable", "true", "--alias"
    )
    assert (code, err) == (0, ""), err
    code, out, _ = await cli(*DEVICES, "data-snapshot", "boiler room", "--alias", "--json")
    assert json.loads(out) == [
        {"interface": RATE, "path": "/s1/enable", "value": True, "timestamp": None}
    ]


async def test_listing_follows_pages(cli: Cli, platform: Platform) -> None:
    assert platform.storage is not None
    ids = sorted(random_device_id() for _ in range(1001))
    for device_id in ids:
        await platform.storage.devices.register(REALM, device_id, "hash", {}, datetime.now(UTC))
    code, out, err = await cli(*DEVICES, "list")
    assert (code, err) == (0, ""), err
    assert sorted(out.split()) == ids
    code, out, _ = await cli(*DEVICES, "list", "--limit", "3")
    assert len(out.split()) == 3
    code, out, err = await cli(*DEVICES, "list", "--page-size", "400", "--details", "--json")
    assert (code, err) == (0, ""), err
    assert sorted(status["id"] for status in json.loads(out)) == ids


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            (*DEVICES, "show", "AAAAAAAAAAAAAAAAAAAAAA"),
            f"GET /appengine/v1/{REALM}/devices/AAAAAAAAAAAAAAAAAAAAAA: 404 Device not found",
        ),
        (
            (*DEVICES, "show", "not-an-id"),
            f"GET /appengine/v1/{REALM}/devices/not-an-id: 400 Bad request",
        ),
        (
            (*DEVICES, "send-data", "AAAAAAAAAAAAAAAAAAAAAA", COMMANDS, "/command", '{"a": 1'),
            "VALUE is not valid JSON: Expecting ',' delimiter: line 1 column 8 (char 7)",
        ),
        (
            (
                *DEVICES,
                "set-property",
                "AAAAAAAAAAAAAAAAAAAAAA",
                RATE,
                "/a",
                "x",
                "--type",
                "integer",
            ),
            "VALUE 'x' is not a valid integer",
        ),
        (
            (*PAIRING, "agent", "register", "AAAAAAAAAAAAAAAAAAAAAA", "--introspection", "a.b:1"),
            "--introspection: not name:major:minor: 'a.b:1'",
        ),
        (
            (*PAIRING, "agent", "register", "short"),
            f"POST /pairing/v1/{REALM}/agent/devices: 422 hw_id: is not a valid base64 encoded "
            "128 bits id",
        ),
        (
            (*PAIRING, "agent", "unregister", "AAAAAAAAAAAAAAAAAAAAAA"),
            f"DELETE /pairing/v1/{REALM}/agent/devices/AAAAAAAAAAAAAAAAAAAAAA: 404 Device not found",
        ),
        (
            ("appengine", "--realm", REALM, "devices", "list"),
            "give --token or --private-key (or ASTRAEA_APPENGINE_TOKEN / ASTRAEA_REALM_KEY)",
        ),
        (
            ("pairing", "--realm", REALM, "agent", "unregister", "AAAAAAAAAAAAAAAAAAAAAA"),
            "give --token or --private-key (or ASTRAEA_PAIRING_TOKEN / ASTRAEA_REALM_KEY)",
        ),
    ],
)
async def test_errors_are_one_line(cli: Cli, args: tuple[str, ...], error: str) -> None:
    code, out, err = await cli(*args)
    assert (code, out, err) == (1, "", f"Error: {error}\n")


async def test_server_refusals_of_writes_and_reads(cli: Cli, device: MqttDevice) -> None:
    dev = device.device_id
    code, _, err = await cli(*DEVICES, "set-property", dev, SENSORS, "/s1/name", "x")
    assert code == 1
    assert err.endswith(": 405 Cannot write to device owned resource\n")
    code, _, err = await cli(*DEVICES, "send-data", dev, COMMANDS, "/command", "[1, 2]")
    assert code == 1
    assert err.endswith(": 422 detail: Unexpected value type; expected_type: string\n"), err
    code, _, err = await cli(*DEVICES, "data-snapshot", dev, "org.example.Missing")
    assert (code, err) == (
        1,
        f"Error: org.example.Missing is not in the introspection of device {dev}\n",
    )
    code, _, err = await cli(*DEVICES, "get-samples", dev, VALUES, "/s9/value")
    assert code == 1 and err.endswith(": 404 Path not found\n")
    code, _, err = await cli(*DEVICES, "get-samples", dev, VALUES, "/s1/value", "--since", "soon")
    assert code == 1 and err.endswith(": 422 since: is invalid\n")
