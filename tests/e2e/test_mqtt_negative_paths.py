"""What the platform does with devices that misbehave or may not connect, seen from the field.

Real platform, real TLS, real clients (paho-mqtt; `RawDevice` where the wire must be exact).
Each invalid message must end as its Astarte device error (counted on /metrics as
`astraea_device_errors_total{realm, error}`), disconnect the device when ingestion.md says so,
and leave stored data as it was: earlier values read back through AppEngine, nothing of the
rejected message does.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from astraea.core.device_id import random_device_id
from astraea.transport.packets import (
    DEFAULT_MAX_PACKET_SIZE,
    ConnAck,
    Connect,
    ConnectReturnCode,
    PubComp,
    Publish,
    PubRec,
    PubRel,
)
from tests.conftest import KeyPair
from tests.e2e.conftest import DeviceSetup
from tests.e2e.mqtt_device import (
    Credentials,
    MqttDevice,
    broker_pki,
    new_csr,
    pair,
    register,
    request_certificate,
    save_cert,
)
from tests.ingest.ingest_support import bson_value
from tests.transport.transport_support import PahoDevice, Pki, RawDevice, eventually

pytestmark = pytest.mark.timeout(60)

VALUES = "org.astraea.e2e.DeviceValues"
AGGREGATE = "org.astraea.e2e.DeviceAggregate"
DEVICE_PROPS = "org.astraea.e2e.DeviceProps"
SERVER_PROPS = "org.astraea.e2e.ServerProps"
LIMITS = "org.astraea.e2e.Limits"
STRICT_PROPS = "org.astraea.e2e.StrictProps"
MISSING = "org.astraea.e2e.NeverInstalled"

EXTRA_INTERFACES: list[dict[str, Any]] = [
    {
        "interface_name": LIMITS,
        "version_major": 1,
        "version_minor": 0,
        "type": "datastream",
        "ownership": "device",
        "mappings": [
            {"endpoint": "/label", "type": "string", "reliability": "unique"},
            {"endpoint": "/tags", "type": "stringarray", "reliability": "unique"},
        ],
    },
    {
        "interface_name": STRICT_PROPS,
        "version_major": 1,
        "version_minor": 0,
        "type": "properties",
        "ownership": "device",
        "mappings": [{"endpoint": "/%{key}/text", "type": "string"}],
    },
]

# AGGREGATE is installed but left out on purpose; MISSING is declared but never installed.
INTROSPECTION = {
    name: (1, 0) for name in (VALUES, DEVICE_PROPS, SERVER_PROPS, LIMITS, STRICT_PROPS, MISSING)
}
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
FIRST_SAMPLE = {"timestamp": "2026-01-01T10:00:00.000Z", "value": 21.5}
NOT_AUTHORIZED = 0x87  # paho reports CONNACK 5 as its MQTT 5 equivalent


@dataclass
class Fleet:
    """The `device` fixture's platform as devices meet it: its registered device paired,
    TLS material for its broker, and every client opened (closed at teardown)."""

    setup: DeviceSetup
    pki: Pki
    paired: Credentials
    agent: dict[str, str]
    directory: Path
    clients: list[PahoDevice] = field(default_factory=list)

    @property
    def http(self) -> httpx.AsyncClient:
        return self.setup.http

    @property
    def port(self) -> int:
        assert self.setup.platform.mqtt is not None
        return self.setup.platform.mqtt.port

    async def connected(self, credentials: Credentials | None = None) -> MqttDevice:
        """A device connected with a clean session that declared `INTROSPECTION`."""
        device = MqttDevice(self.pki, self.port, credentials or self.paired)
        self.clients.append(device)
        assert await device.connect() == (0, False)
        await device.declare(INTROSPECTION)
        return device

    async def raw(self, *, clean_session: bool = True) -> tuple[RawDevice, Any]:
        """The paired device on a raw connection, with the CONNECT answer."""
        return await RawDevice.connected(
            self.pki, self.port, self.paired.cert, clean_session=clean_session
        )

    async def connect_code(self, cert: tuple[Path, Path]) -> int:
        """The CONNACK code a client with this certificate gets."""
        device = PahoDevice(self.pki, self.port, cert)
        self.clients.append(device)
        code, _ = await device.connect()
        return code

    async def another_device(self) -> Credentials:
        device_id = random_device_id()
        secret = await register(self.http, self.setup.realm, device_id, self.agent)
        return await pair(self.http, self.setup.realm, device_id, secret, self.directory)

    async def read(self, interface: str, path: str = "", device_id: str | None = None) -> Any:
        """What AppEngine returns for the values at `path`; None when nothing is there."""
        device_id = device_id or self.paired.device_id
        response = await self.http.get(
            f"/appengine/v1/{self.setup.realm}/devices/{device_id}/interfaces/{interface}{path}",
            headers=self.setup.appengine,
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()["data"]

    async def introspection(self) -> dict[str, Any]:
        """The paired device's stored introspection, as AppEngine shows it."""
        response = await self.http.get(
            f"/appengine/v1/{self.setup.realm}/devices/{self.paired.device_id}",
            headers=self.setup.appengine,
        )
        assert response.status_code == 200, response.text
        introspection: dict[str, Any] = response.json()["data"]["introspection"]
        return introspection

    async def counters(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Samples of the counter `name` (without `_total`) on /metrics, by their labels."""
        response = await self.http.get("/metrics")
        assert response.status_code == 200
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            if family.name == name
            for sample in family.samples
            if sample.name == f"{name}_total"
        }

    async def device_errors(self) -> dict[str, float]:
        """Device errors counted in the realm, by error name."""
        return {
            dict(labels)["error"]: value
            for labels, value in (await self.counters("astraea_device_errors")).items()
            if dict(labels)["realm"] == self.setup.realm
        }


@pytest.fixture
async def fleet(device: DeviceSetup, realm_keys: KeyPair, tmp_path: Path) -> AsyncIterator[Fleet]:
    for interface in EXTRA_INTERFACES:
        response = await device.http.post(
            f"/realmmanagement/v1/{device.realm}/interfaces",
            json={"data": interface},
            headers=realm_keys.headers("realm-management"),
        )
        assert response.status_code == 201, response.text
    assert device.platform.keys is not None
    directory = tmp_path / "devices"
    directory.mkdir()
    paired = await pair(device.http, device.realm, device.device_id, device.secret, directory)
    found = Fleet(
        setup=device,
        pki=broker_pki(tmp_path / "foreign-pki", device.platform.keys.mqtt_tls_cert),
        paired=paired,
        agent=realm_keys.headers("pairing"),
        directory=directory,
    )
    try:
        yield found
    finally:
        for client in found.clients:
            await client.close()


# -- invalid data ----------------------------------------------------------------------------


class Rejected(NamedTuple):
    suffix: str  # the topic below the device's root
    payload: bytes
    error: str
    unwritten: tuple[str, str] = (VALUES, "/s2/value")  # must read back absent or empty


REJECTED = {
    "bad-bson": Rejected(
        f"/{VALUES}/s2/value", b"\x10\x00\x00\x00\x01v\x00garbage", "undecodable_bson_payload"
    ),
    "not-installed": Rejected(f"/{MISSING}/anything", bson_value(1.0), "interface_loading_failed"),
    "not-in-introspection": Rejected(
        f"/{AGGREGATE}/kitchen",
        bson_value({"temperature": 20.5, "label": "warm"}),
        "interface_loading_failed",
        (AGGREGATE, "/kitchen"),
    ),
    "wrong-type": Rejected(f"/{VALUES}/s2/value", bson_value("hot"), "unexpected_value_type"),
    "unknown-path": Rejected(f"/{VALUES}/s2/temperature", bson_value(1.0), "mapping_not_found"),
    "double-slash": Rejected(f"/{VALUES}/s2//value", bson_value(1.0), "invalid_path"),
    # 65 537 bytes: one past the string limit, still within the transport's packet limit.
    "string-too-long": Rejected(
        f"/{LIMITS}/label", bson_value("x" * 65_537), "value_size_exceeded", (LIMITS, "/label")
    ),
    "array-too-long": Rejected(
        f"/{LIMITS}/tags", bson_value(["t"] * 1025), "value_size_exceeded", (LIMITS, "/tags")
    ),
    "server-owned": Rejected(
        f"/{SERVER_PROPS}/pump/level",
        bson_value(1.5),
        "write_on_server_owned_interface",
        (SERVER_PROPS, ""),
    ),
    "bad-introspection": Rejected("", b"not an introspection", "invalid_introspection"),
    "unknown-control": Rejected("/control/reboot", b"1", "unexpected_control_message"),
    "bad-capabilities": Rejected("/capabilities", b"garbage", "malformed_capabilities_message"),
    "bad-purge-list": Rejected(
        "/control/producer/properties", b"\x00\x00\x00\x09not zlib", "purge_properties_error"
    ),
}


@pytest.mark.parametrize("case", REJECTED.values(), ids=REJECTED.keys())
async def test_invalid_message_disconnects_with_its_device_error_and_stores_nothing(
    fleet: Fleet, case: Rejected
) -> None:
    assert len(case.payload) + 200 < DEFAULT_MAX_PACKET_SIZE  # ingestion decides, not the transport
    device = await fleet.connected()
    await device.store(VALUES, "/s1/value", 21.5, T0)

    rejected = await device.publish(device.root + case.suffix, case.payload, 2)

    await device.wait_disconnected()
    assert rejected not in device.acked
    assert await fleet.device_errors() == {case.error: 1.0}
    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]
    assert not await fleet.read(*case.unwritten)
    assert set(await fleet.introspection()) == set(INTROSPECTION)


async def test_rejected_message_discards_a_persistent_session(fleet: Fleet) -> None:
    await (await fleet.connected()).close()
    device, answer = await fleet.raw(clean_session=False)
    assert answer == ConnAck(ConnectReturnCode.ACCEPTED, False)
    device.send(Publish(f"{fleet.paired.root}/{VALUES}/s1/value", b"not bson", 1, packet_id=1))
    assert await device.is_closed()

    device, answer = await fleet.raw(clean_session=False)
    await device.close()
    assert answer == ConnAck(ConnectReturnCode.ACCEPTED, False)


async def test_values_acked_before_a_rejected_message_stay_stored(fleet: Fleet) -> None:
    device = await fleet.connected()

    stored = await device.send(VALUES, "/s1/value", bson_value(21.5, T0), qos=1)
    rejected = await device.send(VALUES, "/s1/value", b"not bson", qos=1)  # without waiting

    await device.wait_disconnected()
    assert stored in device.acked
    assert rejected not in device.acked
    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]


async def test_unset_without_allow_unset_keeps_the_property(fleet: Fleet) -> None:
    device = await fleet.connected()
    await device.store(STRICT_PROPS, "/main/text", "kept")

    rejected = await device.send(STRICT_PROPS, "/main/text", b"")

    await device.wait_disconnected()
    assert rejected not in device.acked
    assert await fleet.device_errors() == {"unset_not_allowed": 1.0}
    assert await fleet.read(STRICT_PROPS) == {"main": {"text": "kept"}}


async def test_unset_on_a_datastream_is_an_error_that_keeps_the_device_connected(
    fleet: Fleet,
) -> None:
    """The one error Astarte answers without a clean session (ingestion.md §3a)."""
    device = await fleet.connected()

    await device.send(VALUES, "/s1/value", b"")
    await device.store(VALUES, "/s1/value", 21.5, T0)

    assert device.disconnections.empty()
    assert await fleet.device_errors() == {"unset_on_datastream": 1.0}
    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]


async def test_packet_over_the_transport_limit_disconnects_before_ingestion(
    fleet: Fleet,
) -> None:
    device = await fleet.connected()
    await device.store(VALUES, "/s1/value", 21.5, T0)

    rejected = await device.send(LIMITS, "/label", bson_value("x" * DEFAULT_MAX_PACKET_SIZE))

    await device.wait_disconnected()
    assert rejected not in device.acked
    assert await fleet.device_errors() == {}
    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]
    assert await fleet.read(LIMITS, "/label") is None


async def test_publishing_on_another_devices_topic_disconnects_and_touches_nothing(
    fleet: Fleet,
) -> None:
    victim_credentials = await fleet.another_device()
    victim = await fleet.connected(victim_credentials)
    await victim.store(VALUES, "/s1/value", 21.5, T0)
    await victim.close()
    intruder = await fleet.connected()

    forged = await intruder.publish(
        f"{victim_credentials.root}/{VALUES}/s1/value", bson_value(99.0, T0), 2
    )

    await intruder.wait_disconnected()
    assert forged not in intruder.acked
    assert await fleet.device_errors() == {}
    victim_id = victim_credentials.device_id
    assert await fleet.read(VALUES, "/s1/value", device_id=victim_id) == [FIRST_SAMPLE]
    assert await fleet.read(VALUES, "/s1/value") is None


# -- QoS 2 duplicates --------------------------------------------------------------------------


async def test_qos2_duplicates_before_pubrel_are_stored_once(fleet: Fleet) -> None:
    await (await fleet.connected()).close()  # stores the introspection
    device, answer = await fleet.raw()
    assert answer == ConnAck(ConnectReturnCode.ACCEPTED, False)
    topic = f"{fleet.paired.root}/{VALUES}/s1/value"
    first = Publish(topic, bson_value(21.5, T0), qos=2, packet_id=7)
    duplicate = Publish(topic, first.payload, qos=2, dup=True, packet_id=7)

    device.send(first, duplicate)  # the copy arrives while the original is being stored
    assert await device.receive() == PubRec(7)
    device.send(duplicate)  # the PUBREC got lost: the device resends
    assert await device.receive() == PubRec(7)
    device.send(PubRel(7))
    assert await device.receive() == PubComp(7)
    await device.close()

    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]


async def test_qos2_duplicate_after_reconnecting_to_a_persistent_session_is_stored_once(
    fleet: Fleet,
) -> None:
    await (await fleet.connected()).close()
    device, _ = await fleet.raw(clean_session=False)
    message = Publish(
        f"{fleet.paired.root}/{VALUES}/s1/value", bson_value(21.5, T0), 2, packet_id=9
    )
    device.send(message)
    assert await device.receive() == PubRec(9)
    await device.close()  # gone before sending PUBREL

    device, answer = await fleet.raw(clean_session=False)
    assert answer == ConnAck(ConnectReturnCode.ACCEPTED, True)
    device.send(Publish(message.topic, message.payload, 2, dup=True, packet_id=9))
    assert await device.receive() == PubRec(9)
    device.send(PubRel(9))
    assert await device.receive() == PubComp(9)
    await device.close()

    assert await fleet.read(VALUES, "/s1/value") == [FIRST_SAMPLE]


# -- who may connect ---------------------------------------------------------------------------


@pytest.mark.parametrize("foreign_ca", [False, True], ids=["no-certificate", "foreign-ca"])
async def test_client_without_a_platform_certificate_cannot_connect(
    fleet: Fleet, foreign_ca: bool
) -> None:
    cert = fleet.pki.client_cert(fleet.paired.root) if foreign_ca else None
    try:
        device = await RawDevice.open(fleet.pki, fleet.port, cert)
    except (ConnectionError, ssl.SSLError):
        pass  # refused during the handshake itself
    else:
        device.send(Connect("x"))
        assert await device.receive() is None
        await device.close()
    mqtt = fleet.setup.platform.mqtt
    assert mqtt is not None
    await eventually(lambda: mqtt.stats.handshake_failures == 1)


async def test_certificate_of_an_unknown_device_is_refused(fleet: Fleet) -> None:
    key, csr = new_csr()
    ca = fleet.setup.platform.ca
    assert ca is not None
    issued = ca.issue_device_certificate(csr, fleet.setup.realm, random_device_id())

    assert await fleet.connect_code(save_cert(fleet.directory, issued.pem, key)) == NOT_AUTHORIZED


async def test_certificate_of_an_unregistered_device_is_refused(fleet: Fleet) -> None:
    response = await fleet.http.delete(
        f"/pairing/v1/{fleet.setup.realm}/agent/devices/{fleet.paired.device_id}",
        headers=fleet.agent,
    )
    assert response.status_code == 204

    assert await fleet.connect_code(fleet.paired.cert) == NOT_AUTHORIZED


async def test_inhibited_device_is_refused_until_the_inhibition_is_lifted(fleet: Fleet) -> None:
    async def inhibit(inhibited: bool) -> None:
        response = await fleet.http.patch(
            f"/appengine/v1/{fleet.setup.realm}/devices/{fleet.paired.device_id}",
            json={"data": {"credentials_inhibited": inhibited}},
            headers={**fleet.setup.appengine, "content-type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text

    await inhibit(True)
    assert await fleet.connect_code(fleet.paired.cert) == NOT_AUTHORIZED

    await inhibit(False)
    await (await fleet.connected()).close()


async def test_superseded_certificate_is_refused(fleet: Fleet) -> None:
    paired = fleet.paired
    newer = await request_certificate(
        fleet.http, paired.realm, paired.device_id, paired.secret, fleet.directory
    )

    assert await fleet.connect_code(paired.cert) == NOT_AUTHORIZED
    assert await fleet.connect_code(newer) == 0


# -- what gets counted ---------------------------------------------------------------------------


async def test_accepted_messages_are_counted_per_realm(fleet: Fleet) -> None:
    device = await fleet.connected()
    await device.store(VALUES, "/s1/value", 21.5, T0)

    realm = (("realm", fleet.setup.realm),)
    introspection = ";".join(f"{name}:1:0" for name in INTROSPECTION)
    assert await fleet.counters("astraea_ingested_messages") == {realm: 2.0}
    assert await fleet.counters("astraea_ingested_bytes") == {
        realm: float(len(introspection) + len(bson_value(21.5, T0)))
    }
    metrics = (await fleet.http.get("/metrics")).text
    # The registration (for `device_registered` triggers), the connection, then each publish.
    assert "astraea_ingest_batch_size_count 4.0" in metrics
    assert "astraea_ingest_batch_duration_seconds_count 4.0" in metrics
