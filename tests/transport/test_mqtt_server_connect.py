"""Connecting: TLS client certificates, authentication, takeover, keep-alive, bad input."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from transport_support import (
    DEVICE_ID,
    REALM,
    ROOT,
    PahoDevice,
    Pki,
    RawDevice,
    RecordingHooks,
    eventually,
)

from astraea.transport.hooks import DisconnectReason
from astraea.transport.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    PingReq,
    PingResp,
    Publish,
)
from astraea.transport.server import MqttServer
from conftest import StartServer

NOT_AUTHORIZED = 0x87  # paho reports CONNACK 5 as its MQTT 5 equivalent, 0x87


async def test_device_connects_with_its_certificate_identity(
    pki: Pki,
    server: MqttServer,
    hooks: RecordingHooks,
    device_cert: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "astraea.connections")
    device = PahoDevice(pki, server.port, device_cert, client_id="ignored-client-id")

    assert await device.connect() == (0, False)
    await device.close()

    await eventually(lambda: hooks.kinds() == ["connect", "disconnect"])
    assert hooks.events[0] == ("authenticate", REALM, DEVICE_ID)
    assert hooks.events[1] == ("connect", REALM, DEVICE_ID, "127.0.0.1", False)
    assert hooks.events[2] == ("disconnect", REALM, DEVICE_ID, DisconnectReason.CLIENT_DISCONNECT)
    pem = device_cert[0].read_bytes()
    expected_der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert hooks.certificates == [expected_der]
    logged = [r.getMessage() for r in caplog.records if r.name == "astraea.connections"]
    assert logged == [
        f"event=connect realm={REALM} device={DEVICE_ID} ip=127.0.0.1 session_present=False",
        f"event=disconnect realm={REALM} device={DEVICE_ID} ip=127.0.0.1 reason=client_disconnect",
    ]
    assert caplog.records[-1].__dict__["device"] == DEVICE_ID  # the fields, for JSON logs


async def test_device_refused_by_authenticate_gets_connack_5(
    pki: Pki,
    server: MqttServer,
    hooks: RecordingHooks,
    device_cert: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "astraea.connections")
    hooks.allow = False
    device = PahoDevice(pki, server.port, device_cert)

    code, _ = await device.connect()

    assert code == NOT_AUTHORIZED
    await device.wait_disconnected()
    await device.close()
    assert hooks.kinds() == []
    assert server.stats.connections_refused == 1
    assert [r.getMessage() for r in caplog.records if r.name == "astraea.connections"] == [
        f"event=refuse realm={REALM} device={DEVICE_ID} ip=127.0.0.1 reason=not_authorized"
    ]


async def test_certificate_that_names_no_device_is_refused(
    pki: Pki, server: MqttServer, hooks: RecordingHooks
) -> None:
    device, answer = await RawDevice.connected(pki, server.port, pki.client_cert("not-a-device"))

    assert answer == ConnAck(ConnectReturnCode.NOT_AUTHORIZED)
    assert await device.is_closed()
    assert hooks.events == []


@pytest.mark.parametrize("rogue", [False, True], ids=["no-certificate", "foreign-ca"])
async def test_tls_without_a_trusted_client_certificate_fails(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, rogue: bool
) -> None:
    cert = pki.client_cert(ROOT, rogue=True) if rogue else None
    try:
        device = await RawDevice.open(pki, server.port, cert)
    except (ConnectionError, OSError):
        pass  # refused during the handshake itself
    else:
        device.send(Connect("x"))
        assert await device.receive() is None
    await eventually(lambda: server.stats.handshake_failures == 1)
    assert hooks.events == []


async def test_handshake_storm_is_paced_not_refused(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks
) -> None:
    server = await start_server(max_concurrent_handshakes=2)
    certs = [pki.client_cert(f"{REALM}/storm{index}") for index in range(20)]

    results = await asyncio.gather(*(RawDevice.connected(pki, server.port, c) for c in certs))

    assert [answer for _, answer in results] == [ConnAck()] * 20
    for device, _ in results:
        await device.close()


async def test_second_connection_takes_over_the_first(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    first = PahoDevice(pki, server.port, device_cert)
    await first.connect()
    second = PahoDevice(pki, server.port, device_cert)

    await second.connect()

    await first.wait_disconnected()
    await eventually(lambda: hooks.kinds() == ["connect", "disconnect", "connect"])
    assert hooks.disconnect_reasons() == [DisconnectReason.TAKEN_OVER]
    await first.close()
    await second.close()


async def test_silent_device_is_dropped_after_one_and_a_half_keepalives(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    device, answer = await RawDevice.connected(pki, server.port, device_cert, keepalive=1)
    assert answer == ConnAck()
    started = asyncio.get_running_loop().time()

    assert await device.is_closed(timeout=4)

    elapsed = asyncio.get_running_loop().time() - started
    assert 1.2 < elapsed < 3.0
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.KEEPALIVE_TIMEOUT])


async def test_pings_keep_a_device_alive(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path]
) -> None:
    device, _ = await RawDevice.connected(pki, server.port, device_cert, keepalive=1)

    for _ in range(5):
        await asyncio.sleep(0.5)
        device.send(PingReq())
        assert await device.receive() == PingResp()

    device.send(Disconnect())
    assert await device.is_closed()


async def test_tls_session_without_connect_is_closed(
    pki: Pki, start_server: StartServer, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server(connect_timeout=0.5)
    device = await RawDevice.open(pki, server.port, device_cert)

    assert await device.is_closed(timeout=3)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"\x36\x05\x00\x01a\x00\x01", id="publish-qos-3"),
        pytest.param(b"\x30\xff\xff\xff\xff\x01", id="remaining-length-5-bytes"),
        pytest.param(b"\xf0\x00", id="reserved-type"),
        pytest.param(b"\x82\x05\x00\x01\x00\x00\x00", id="subscribe-bad-flags"),
        pytest.param(b"\x32\x08\x00\x03a/+\x00\x01x", id="wildcard-topic"),
        pytest.param(b"\x30\x05\x00\x02\xc3\x28x", id="invalid-utf8-topic"),
        pytest.param(b"\x32\x06\x00\x01a\x00\x00x", id="packet-id-0"),
        pytest.param(Connect("again").encode(), id="second-connect"),
    ],
)
async def test_malformed_packet_disconnects(
    pki: Pki,
    server: MqttServer,
    hooks: RecordingHooks,
    device_cert: tuple[Path, Path],
    garbage: bytes,
) -> None:
    device, _ = await RawDevice.connected(pki, server.port, device_cert)

    device.send(garbage)

    assert await device.is_closed()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.PROTOCOL_ERROR])


async def test_packet_over_the_size_limit_disconnects(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server(max_packet_size=1024)
    device, _ = await RawDevice.connected(pki, server.port, device_cert)

    device.send(Publish(f"{ROOT}/big", b"x" * 2000))

    assert await device.is_closed()
    assert hooks.published == []


async def test_first_packet_must_be_connect(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path]
) -> None:
    device = await RawDevice.open(pki, server.port, device_cert)

    device.send(PingReq())

    assert await device.receive() is None


async def test_other_protocol_level_gets_connack_1(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path]
) -> None:
    device = await RawDevice.open(pki, server.port, device_cert)

    device.send(Connect("old", protocol_level=3))

    assert await device.receive() == ConnAck(ConnectReturnCode.UNACCEPTABLE_PROTOCOL_VERSION)
    assert await device.is_closed()
