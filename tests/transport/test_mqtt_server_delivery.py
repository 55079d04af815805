"""Platform -> device: subscriptions, QoS, persistent sessions, windows, forced disconnects."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from transport_support import (
    DEVICE_ID,
    OTHER_DEVICE_ID,
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
    Disconnect,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
)
from astraea.transport.server import MqttServer
from conftest import StartServer

CONSUMER = f"{ROOT}/control/consumer/properties"


async def test_subscriptions_are_confined_to_the_device(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()

    assert await device.subscribe(f"{REALM}/#", 1) == [0x80]
    assert await device.subscribe(f"{ROOT}/control/#", 2) == [2]
    assert await device.subscribe(f"{REALM}/{OTHER_DEVICE_ID}/#", 0) == [0x80]

    assert ("subscribe", REALM, DEVICE_ID, [(f"{ROOT}/control/#", 2)]) in hooks.events
    assert await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"props", 2)
    message = await device.next_message()
    assert (message.topic, message.payload, message.qos) == (CONSUMER, b"props", 2)
    await device.close()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.CLIENT_DISCONNECT])


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_to_device_honours_the_subscription_qos(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path], qos: int
) -> None:
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()
    await device.subscribe(f"{ROOT}/iface/#", qos)

    for requested in (0, 1, 2):
        assert await server.publish_to_device(REALM, DEVICE_ID, f"{ROOT}/iface/v", b"x", requested)
        message = await device.next_message()
        assert message.qos == min(qos, requested)
    await device.close()


async def test_publish_without_session_or_matching_subscription_is_refused(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path]
) -> None:
    assert not await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"x", 1)
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()
    await device.subscribe(f"{ROOT}/control/#", 1)

    assert not await server.publish_to_device(REALM, DEVICE_ID, f"{ROOT}/iface/v", b"x", 1)
    with pytest.raises(ValueError):
        await server.publish_to_device(REALM, DEVICE_ID, f"{ROOT}/+", b"x", 1)
    await device.close()


async def test_persistent_session_queues_while_offline(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    first = PahoDevice(pki, server.port, device_cert, clean_session=False, client_id="one")
    assert await first.connect() == (0, False)
    await first.subscribe(f"{ROOT}/control/#", 1)
    await first.close()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.CLIENT_DISCONNECT])

    for n in range(3):
        assert await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, bytes([n]), 1)
    assert not await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"qos0", 0)

    # sessions follow the certificate, not the client id
    second = PahoDevice(pki, server.port, device_cert, clean_session=False, client_id="two")
    assert await second.connect() == (0, True)
    assert [(await second.next_message()).payload for _ in range(3)] == [b"\0", b"\1", b"\2"]
    assert ("connect", REALM, DEVICE_ID, "127.0.0.1", True) in hooks.events
    await second.close()


async def test_offline_queue_is_bounded(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server(max_queued_messages=3)
    first = PahoDevice(pki, server.port, device_cert, clean_session=False)
    await first.connect()
    await first.subscribe(f"{ROOT}/control/#", 1)
    await first.close()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.CLIENT_DISCONNECT])

    for n in range(5):
        await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, bytes([n]), 1)

    second = PahoDevice(pki, server.port, device_cert, clean_session=False)
    await second.connect()
    assert [(await second.next_message()).payload for _ in range(3)] == [b"\2", b"\3", b"\4"]
    await second.close()


async def test_clean_session_forgets_everything(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    persistent = PahoDevice(pki, server.port, device_cert, clean_session=False)
    await persistent.connect()
    await persistent.subscribe(f"{ROOT}/control/#", 1)
    await persistent.close()
    await eventually(lambda: len(hooks.disconnect_reasons()) == 1)
    assert await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"queued", 1)

    clean = PahoDevice(pki, server.port, device_cert, clean_session=True)
    assert await clean.connect() == (0, False)
    await clean.subscribe(f"{ROOT}/control/#", 1)
    await clean.close()
    await eventually(lambda: len(hooks.disconnect_reasons()) == 2)

    assert not await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"x", 1)


async def test_unacked_messages_are_resent_with_dup_on_reconnect(
    pki: Pki, server: MqttServer, device_cert: tuple[Path, Path]
) -> None:
    device, _ = await RawDevice.connected(pki, server.port, device_cert, clean_session=False)
    device.send(Subscribe(1, ((f"{ROOT}/control/#", 1),)))
    assert await device.receive() == SubAck(1, (1,))
    await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"p", 1)
    assert await device.receive() == Publish(CONSUMER, b"p", qos=1, packet_id=1)
    device.send(Disconnect())  # without acking
    await device.is_closed()

    again, _answer = await RawDevice.connected(pki, server.port, device_cert, clean_session=False)

    assert await again.receive() == Publish(CONSUMER, b"p", qos=1, dup=True, packet_id=1)
    again.send(PubAck(1))
    await again.close()


async def test_inflight_window_and_slow_consumer(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server(max_inflight=2, max_queued_messages=3)
    device, _ = await RawDevice.connected(pki, server.port, device_cert)
    device.send(Subscribe(1, ((f"{ROOT}/control/#", 1),)))
    await device.receive()

    for n in range(4):
        assert await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, bytes([n]), 1)
    assert [await device.receive(), await device.receive()] == [
        Publish(CONSUMER, b"\0", qos=1, packet_id=1),
        Publish(CONSUMER, b"\1", qos=1, packet_id=2),
    ]
    assert await device.nothing_within(0.2)
    device.send(PubAck(1))
    assert await device.receive() == Publish(CONSUMER, b"\2", qos=1, packet_id=3)

    for n in range(4, 8):  # two in flight, three queued: the fourth overflows
        await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, bytes([n]), 1)
    assert await device.is_closed()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.SLOW_CONSUMER])


async def test_forced_disconnect_discards_the_session(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    device = PahoDevice(pki, server.port, device_cert, clean_session=False)
    await device.connect()
    await device.subscribe(f"{ROOT}/control/#", 1)

    assert await server.disconnect_device(REALM, DEVICE_ID, "device deleted")

    await device.wait_disconnected()
    assert hooks.disconnect_reasons() == [DisconnectReason.FORCED]
    assert not await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"x", 1)
    assert not await server.disconnect_device(REALM, DEVICE_ID, "again")
    await device.close()


async def test_server_close_disconnects_devices(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server()
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()

    await server.close()

    await device.wait_disconnected()
    assert hooks.disconnect_reasons() == [DisconnectReason.SERVER_SHUTDOWN]
    await device.close()


async def test_qos0_is_dropped_for_a_device_that_does_not_read(
    pki: Pki, start_server: StartServer, device_cert: tuple[Path, Path]
) -> None:
    server = await start_server(write_buffer_limit=64 * 1024)
    device, _ = await RawDevice.connected(pki, server.port, device_cert)
    device.send(Subscribe(1, ((f"{ROOT}/control/#", 0),)))
    assert await device.receive() == SubAck(1, (0,))
    memory_before = psutil.Process().memory_info().rss

    delivered = 0
    for _ in range(4_000):  # 64 MiB offered to a device that reads nothing
        if not await server.publish_to_device(REALM, DEVICE_ID, CONSUMER, b"x" * 16_384, 0):
            break
        delivered += 1

    assert delivered < 1_000
    assert server.stats.qos0_dropped == 1
    assert psutil.Process().memory_info().rss - memory_before < 24 * 1024 * 1024
    await device.close()
