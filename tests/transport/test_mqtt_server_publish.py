"""Device -> platform: QoS flows, ordering, ACL, ack-after-hook, rejection, backpressure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
from transport_support import (
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
from astraea.transport.packets import PubAck, PubComp, Publish, PubRec, PubRel
from astraea.transport.server import MqttServer
from conftest import StartServer


async def test_qos_0_1_2_reach_the_platform_in_order(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()
    sent = [(f"{ROOT}/iface/{n}", str(n).encode(), n % 3) for n in range(300)]

    mids = [await device.publish(topic, payload, qos) for topic, payload, qos in sent]

    await eventually(lambda: len(hooks.published) == len(sent))
    assert hooks.published == sent
    for mid, (_, _, qos) in zip(mids, sent, strict=True):
        if qos:
            await device.wait_acked(mid)
    await device.close()


async def test_publish_outside_own_topics_disconnects(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    device = PahoDevice(pki, server.port, device_cert)
    await device.connect()

    await device.publish(f"{REALM}/{OTHER_DEVICE_ID}/iface/x", b"intruder", 1)

    await device.wait_disconnected()
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.ACL_VIOLATION])
    assert hooks.published == []
    await device.close()


async def test_ack_waits_for_the_hook(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    hooks.publish_gate = asyncio.Event()
    device, _ = await RawDevice.connected(pki, server.port, device_cert)

    device.send(
        Publish(f"{ROOT}/a", b"1", qos=1, packet_id=1),
        Publish(f"{ROOT}/b", b"2", qos=2, packet_id=2),
    )

    assert await device.nothing_within(0.3)
    hooks.publish_gate.set()
    assert [await device.receive(), await device.receive()] == [PubAck(1), PubRec(2)]
    assert hooks.published == [(f"{ROOT}/a", b"1", 1), (f"{ROOT}/b", b"2", 2)]


async def test_qos2_duplicate_before_pubrel_is_delivered_once(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    hooks.publish_gate = asyncio.Event()
    device, _ = await RawDevice.connected(pki, server.port, device_cert)
    publish = Publish(f"{ROOT}/unique", b"once", qos=2, packet_id=42)
    duplicate = Publish(f"{ROOT}/unique", b"once", qos=2, dup=True, packet_id=42)

    device.send(publish, duplicate)  # resent while the hook is still running
    await asyncio.sleep(0.1)
    hooks.publish_gate.set()
    assert await device.receive() == PubRec(42)
    device.send(duplicate)  # resent after PUBREC was lost
    assert await device.receive() == PubRec(42)
    device.send(PubRel(42))
    assert await device.receive() == PubComp(42)

    assert hooks.published == [(f"{ROOT}/unique", b"once", 2)]


async def test_rejected_message_disconnects_without_ack(
    pki: Pki, server: MqttServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    hooks.reject_payload = b"bad"
    device, _ = await RawDevice.connected(pki, server.port, device_cert)

    device.send(
        Publish(f"{ROOT}/a", b"good", qos=1, packet_id=1),
        Publish(f"{ROOT}/a", b"bad", qos=1, packet_id=2),
        Publish(f"{ROOT}/a", b"after", qos=1, packet_id=3),
    )

    assert await device.receive() == PubAck(1)
    assert await device.receive() is None
    await eventually(lambda: hooks.disconnect_reasons() == [DisconnectReason.REJECTED_MESSAGE])
    assert hooks.published == [(f"{ROOT}/a", b"good", 1)]


async def test_slow_platform_pauses_reading_instead_of_buffering(
    pki: Pki, start_server: StartServer, hooks: RecordingHooks, device_cert: tuple[Path, Path]
) -> None:
    limit = 50
    server = await start_server(max_pending_packets=limit)
    hooks.publish_gate = asyncio.Event()
    device, _ = await RawDevice.connected(pki, server.port, device_cert)
    payload = b"x" * 16_384
    total = 2_000  # 32 MiB offered
    memory_before = psutil.Process().memory_info().rss

    accepted = 0
    for index in range(total):
        device.send(Publish(f"{ROOT}/bulk", payload, qos=1, packet_id=index % 65_535 + 1))
        try:
            await asyncio.wait_for(device.writer.drain(), 0.5)
        except TimeoutError:
            break
        accepted += 1

    assert accepted < total / 2  # the socket stopped taking data: nobody is reading it
    assert server.stats.pending_high_water <= limit
    assert psutil.Process().memory_info().rss - memory_before < 24 * 1024 * 1024
    hooks.publish_gate.set()
    await eventually(lambda: len(hooks.published) >= accepted, timeout=20)
    await device.close()
