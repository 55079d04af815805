"""QoS 1 throughput of the MQTT transport with a no-op hook, driven by paho-mqtt clients.

    .venv/bin/python bench/transport_throughput.py [--clients 4] [--messages 10000]

The server runs in one process (uvloop unless --loop asyncio), each paho client in its own
process, all over TLS with client certificates on 127.0.0.1. Every client publishes its
messages as fast as paho allows (window of --window in flight) and waits for all PUBACKs.
Reported: end-to-end msg/s (first publish to last PUBACK) and the server's CPU time per
message. All processes share this machine's cores and paho is pure Python, so the
end-to-end rate is bounded by the clients as much as by the server; 1e6 / (server CPU
us per message) is what one core of transport alone could take.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import bson
import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from astraea.transport.hooks import DisconnectReason, TransportHooks
from astraea.transport.server import MqttServer
from astraea.transport.settings import TransportSettings

# The throwaway PKI of the transport tests; a benchmark has no business owning its own copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "transport"))
from transport_support import Pki

REALM = "bench"
# An Astarte datastream sample as devices send it: BSON {"v": <double>, "t": <datetime>}.
PAYLOAD = bson.encode({"v": 21.5, "t": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)})
INTERFACE_PATH = "org.astarte-platform.genericsensors.Values/streamTest/value"


class NoopHooks(TransportHooks):
    async def authenticate(self, realm: str, device_id: str, peer_cert_der: bytes) -> bool:
        return True

    async def on_connect(
        self, realm: str, device_id: str, peer_ip: str, session_present: bool
    ) -> None:
        return None

    async def on_disconnect(self, realm: str, device_id: str, reason: DisconnectReason) -> None:
        return None

    async def on_publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        return None


def serve(settings: TransportSettings, loop_name: str, ports: Any, stop: EventType) -> None:

    async def main() -> None:
        async with MqttServer(NoopHooks(), settings) as server:
            ports.put(server.port)
            await asyncio.to_thread(stop.wait)

    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if loop_name == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def publish(
    device_id: str,
    tls_files: tuple[Path, Path, Path],
    port: int,
    messages: int,
    window: int,
    start: Barrier,
    results: Any,
) -> None:
    ca_file, cert, key = tls_files
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=paho.MQTTv311)
    client.tls_set(ca_certs=str(ca_file), certfile=str(cert), keyfile=str(key))
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    connected, done = threading.Event(), threading.Event()
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == messages:
            done.set()

    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(30)
    topic = f"{REALM}/{device_id}/{INTERFACE_PATH}"
    start.wait(60)
    started = time.time()
    for _ in range(messages):
        client.publish(topic, PAYLOAD, 1)
    done.wait(300)
    results.put((started, time.time(), acked))
    client.disconnect()
    client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--messages", type=int, default=10_000, help="per client")
    parser.add_argument("--window", type=int, default=100, help="QoS 1 in flight per client")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory:
        pki = Pki.create(Path(directory))
        settings = TransportSettings(
            ca_file=pki.ca_file,
            cert_file=pki.server_cert,
            key_file=pki.server_key,
            host="127.0.0.1",
            port=0,
        )
        ports, results, stop = context.Queue(), context.Queue(), context.Event()
        server = context.Process(target=serve, args=(settings, args.loop, ports, stop))
        server.start()
        port = ports.get(timeout=30)
        start = context.Barrier(args.clients + 1)
        clients = []
        for n in range(args.clients):
            device_id = f"device{n:04d}"
            tls_files = (pki.ca_file, *pki.client_cert(f"{REALM}/{device_id}"))
            arguments = (device_id, tls_files, port, args.messages, args.window, start, results)
            clients.append(context.Process(target=publish, args=arguments))
        for client in clients:
            client.start()
        server_process = psutil.Process(server.pid)
        start.wait(120)
        user_before, system_before = server_process.cpu_times()[:2]
        outcomes = [results.get(timeout=600) for _ in clients]
        user_after, system_after = server_process.cpu_times()[:2]
        user, system = user_after - user_before, system_after - system_before
        cpu_used = user + system
        for client in clients:
            client.join(30)
        stop.set()
        server.join(30)

    total = sum(acked for _, _, acked in outcomes)
    elapsed = max(end for _, end, _ in outcomes) - min(begin for begin, _, _ in outcomes)
    print(
        f"{args.clients} paho clients x {args.messages} QoS 1 messages over TLS, "
        f"{args.loop} server, window {args.window}\n"
        f"  acknowledged: {total} / {args.clients * args.messages}\n"
        f"  end to end:   {total / elapsed:,.0f} msg/s ({elapsed:.2f} s)\n"
        f"  server CPU:   {cpu_used:.2f} s = {cpu_used / total * 1e6:.1f} us/msg "
        f"(~{total / cpu_used:,.0f} msg/s per core) at {cpu_used / elapsed:.0%} of a core;"
        f" {system / cpu_used:.0%} of it in the kernel (TLS records, loopback TCP)"
    )


if __name__ == "__main__":
    main()
