"""Device load generator: many TLS MQTT devices on one asyncio loop, plus a `#` subscriber.

One asyncio Protocol per device instead of one paho thread per device: a thousand threads
would spend the machine on context switches, and on a 2-core box every cycle the generator
burns is taken from the system under test. Packets are built with the platform's own codec
(`astraea.transport.packets`); the per-message PUBLISH is a pre-encoded template in which only
the packet id and the value are patched, which `_check_template` proves byte-identical to a
freshly encoded packet.

Message identity: device `d` (global number) sends values `d * N + k` for k in 0..N-1, as
the BSON double `{"v": float(id)}`. The id is what the subscriber and the storage check read
back, so loss and duplicates are exact and the payload is the same 16 bytes on both targets.
Times are `time.perf_counter_ns()` (CLOCK_MONOTONIC, shared by every process on the machine),
so send times taken in a worker and receive times taken in the parent can be subtracted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import struct
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

from astraea.transport.packets import (
    ConnAck,
    Connect,
    ConnectReturnCode,
    Disconnect,
    PacketDecoder,
    ProtocolError,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
)

_DOUBLE = struct.Struct("<d")
_PAYLOAD_PREFIX = b"\x10\x00\x00\x00\x01v\x00"
_PAYLOAD_SIZE = 16
#: How often the rate pacer wakes up; at 5 000 msg/s that is ~10 messages per tick.
_PACER_TICK = 0.002
_CLOSE_TIMEOUT = 10.0


def value_payload(value: float) -> bytes:
    """BSON `{"v": value}`: always 16 bytes, the double at offset 7."""
    return _PAYLOAD_PREFIX + _DOUBLE.pack(value) + b"\x00"


def payload_value(payload: bytes) -> float | None:
    if len(payload) != _PAYLOAD_SIZE or not payload.startswith(_PAYLOAD_PREFIX):
        return None
    value: float = _DOUBLE.unpack_from(payload, 7)[0]
    return value


@dataclass(frozen=True, slots=True)
class Device:
    index: int  # global device number
    client_id: str  # <realm>/<device_id>, also the CN of its certificate
    topic: str  # data topic
    cert_bundle: str  # PEM file holding certificate and key


@dataclass(frozen=True, slots=True)
class LoadSpec:
    host: str
    port: int
    ca_file: str
    qos: int
    messages_per_device: int
    #: Aggregate messages/s for this worker's devices; None publishes as fast as possible.
    rate: float | None = None
    #: QoS 1 messages in flight per device.
    window: int = 10
    #: Introspection string published (QoS 1, acknowledged) after CONNACK, before any data.
    introspection: str | None = None
    server_hostname: str = "localhost"
    connect_concurrency: int = 64
    connect_timeout: float = 30.0
    run_timeout: float = 300.0
    keepalive: int = 600


@dataclass(slots=True)
class WorkerResult:
    first_index: int
    devices: int
    connected: int
    sent: int
    acked: int
    unexpected_packets: int
    lost_connections: int
    timed_out: bool
    cpu_seconds: float
    max_pacer_lag: int
    errors: list[str]
    send_ns: bytes  # array("q"), one slot per message of this worker, 0 = never sent
    ack_ns: bytes  # array("q"), PUBACK arrival, 0 = never acknowledged


def _check_template(connection: _DeviceConnection) -> None:
    """Patching the template must produce exactly what the codec would encode."""
    template = bytearray(connection.template)
    for packet_id, value in ((1, 0.0), (0x1234, 123456.0)):
        connection.patch(template, packet_id, value)
        fresh = Publish(
            connection.device.topic,
            value_payload(value),
            connection.qos,
            packet_id=packet_id if connection.qos else 0,
        ).encode()
        if bytes(template) != fresh:
            raise AssertionError("PUBLISH template patching diverged from the codec")


class _DeviceConnection(asyncio.Protocol):
    """One device: CONNECT, optional introspection, then data PUBLISHes on demand."""

    def __init__(self, generator: _Generator, device: Device, slot: int) -> None:
        loop = asyncio.get_running_loop()
        self.generator = generator
        self.device = device
        self.qos = generator.spec.qos
        self.base = slot * generator.per_device
        self.first_value = device.index * generator.per_device
        self.transport: asyncio.Transport | None = None
        self.decoder = PacketDecoder()
        self.connack: asyncio.Future[ConnAck] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.control: dict[int, asyncio.Future[None]] = {}
        self.inflight: dict[int, int] = {}
        self.next_seq = 0
        self.acked = 0
        self.last_packet_id = 0
        self.paused = False
        self.lost = False
        self.closing = False
        self.established = False
        self.template = bytearray(
            Publish(
                device.topic, value_payload(0.0), self.qos, packet_id=int(self.qos > 0)
            ).encode()
        )
        self.value_offset = len(self.template) - _PAYLOAD_SIZE + 7
        self.packet_id_offset = len(self.template) - _PAYLOAD_SIZE - 2

    def patch(self, template: bytearray, packet_id: int, value: float) -> None:
        _DOUBLE.pack_into(template, self.value_offset, value)
        if self.qos:
            template[self.packet_id_offset] = packet_id >> 8
            template[self.packet_id_offset + 1] = packet_id & 0xFF

    def _next_packet_id(self) -> int:
        packet_id = self.last_packet_id % 65_535 + 1
        self.last_packet_id = packet_id
        if packet_id in self.inflight or packet_id in self.control:
            raise RuntimeError("packet id still in flight after 65 535 messages")
        return packet_id

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport implements asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=64 * 1024)
        connect = Connect(self.device.client_id, keepalive=self.generator.spec.keepalive)
        self.transport.write(connect.encode())

    def data_received(self, data: bytes) -> None:
        generator = self.generator
        decoder = self.decoder
        decoder.feed(data)
        now = 0
        try:
            while (packet := decoder.next_packet()) is not None:
                if type(packet) is PubAck:
                    local = self.inflight.pop(packet.packet_id, None)
                    if local is None:
                        waiter = self.control.pop(packet.packet_id, None)
                        if waiter is None:
                            generator.unexpected_packets += 1
                        elif not waiter.done():
                            waiter.set_result(None)
                        continue
                    if not now:
                        now = time.perf_counter_ns()
                    generator.ack_ns[local] = now
                    self.acked += 1
                    generator.acked += 1
                elif isinstance(packet, ConnAck):
                    if not self.connack.done():
                        self.connack.set_result(packet)
                else:
                    generator.unexpected_packets += 1
        except ProtocolError as exc:
            generator.errors.append(f"{self.device.client_id}: {exc.reason}")
            if self.transport is not None:
                self.transport.abort()
            return
        if now:
            if generator.refill and self.next_seq < generator.per_device:
                self.send(generator.spec.window - len(self.inflight))
            generator.check_finished()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.generator.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        failure = exc or ConnectionResetError("closed by the server")
        if not self.connack.done():
            self.connack.set_exception(failure)
        for waiter in self.control.values():
            if not waiter.done():
                waiter.set_exception(failure)
        if not self.closed.done():
            self.closed.set_result(None)
        self.generator.connection_lost(self, failure)

    # publishing

    async def publish_control(self, topic: str, payload: bytes) -> None:
        """A QoS 1 message outside the measured data (introspection), awaited."""
        assert self.transport is not None
        packet_id = self._next_packet_id()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.control[packet_id] = waiter
        self.transport.write(Publish(topic, payload, 1, packet_id=packet_id).encode())
        await waiter

    def can_send(self) -> bool:
        return (
            self.next_seq < self.generator.per_device
            and not self.lost
            and not self.paused
            and (not self.qos or len(self.inflight) < self.generator.spec.window)
        )

    def send(self, count: int) -> int:
        """Write up to `count` next data messages in one TLS write; returns how many."""
        generator = self.generator
        count = min(count, generator.per_device - self.next_seq)
        if count <= 0 or self.lost or self.transport is None:
            return 0
        template = self.template
        packets = []
        first_local = self.base + self.next_seq
        for seq in range(self.next_seq, self.next_seq + count):
            local = self.base + seq
            if self.qos:
                packet_id = self._next_packet_id()
                self.inflight[packet_id] = local
                self.patch(template, packet_id, float(self.first_value + seq))
            else:
                _DOUBLE.pack_into(template, self.value_offset, float(self.first_value + seq))
            packets.append(bytes(template))
        self.next_seq += count
        now = time.perf_counter_ns()
        send_ns = generator.send_ns
        for local in range(first_local, first_local + count):
            send_ns[local] = now
        self.transport.write(packets[0] if count == 1 else b"".join(packets))
        generator.sent += count
        return count

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.write(Disconnect().encode())
            self.transport.close()


@dataclass
class _Generator:
    spec: LoadSpec
    devices: list[Device]
    per_device: int = 0
    connections: list[_DeviceConnection] = field(default_factory=list)
    sent: int = 0
    acked: int = 0
    expected_acks: int = 0
    unexpected_packets: int = 0
    lost_connections: int = 0
    max_pacer_lag: int = 0
    errors: list[str] = field(default_factory=list)
    publishing: bool = False

    def __post_init__(self) -> None:
        self.per_device = self.spec.messages_per_device
        total = len(self.devices) * self.per_device
        self.send_ns = array("q", bytes(8 * total))
        self.ack_ns = array("q", bytes(8 * total))
        self.refill = self.spec.qos > 0 and self.spec.rate is None
        self.writable = asyncio.Event()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # connecting

    async def connect_all(self) -> None:
        slots = asyncio.Semaphore(self.spec.connect_concurrency)
        attempts = [self._connect(slot, device, slots) for slot, device in enumerate(self.devices)]
        connected = await asyncio.gather(*attempts)
        self.connections = [c for c in connected if c is not None]
        for connection in self.connections:
            connection.established = True
        if self.connections:
            _check_template(self.connections[0])

    async def _connect(
        self, slot: int, device: Device, slots: asyncio.Semaphore
    ) -> _DeviceConnection | None:
        spec = self.spec
        context = ssl.create_default_context(cafile=spec.ca_file)
        context.load_cert_chain(device.cert_bundle)
        failure = ""
        for attempt in range(3):
            async with slots:
                connection = _DeviceConnection(self, device, slot)
                try:
                    async with asyncio.timeout(spec.connect_timeout):
                        await self._open(connection, context)
                        connack = await connection.connack
                        if connack.return_code != ConnectReturnCode.ACCEPTED:
                            connection.close()
                            self.errors.append(f"{device.client_id}: {connack.return_code!r}")
                            return None
                        if spec.introspection is not None:
                            await connection.publish_control(
                                device.client_id, spec.introspection.encode()
                            )
                    return connection
                except OSError as exc:  # TLS, refused, reset, timeout
                    failure = repr(exc)
                    if connection.transport is not None:
                        connection.transport.abort()
            await asyncio.sleep(0.2 * (attempt + 1))
        self.errors.append(f"{device.client_id}: {failure}")
        return None

    async def _open(self, connection: _DeviceConnection, context: ssl.SSLContext) -> None:
        await asyncio.get_running_loop().create_connection(
            lambda: connection,
            self.spec.host,
            self.spec.port,
            ssl=context,
            server_hostname=self.spec.server_hostname,
        )

    def connection_lost(self, connection: _DeviceConnection, exc: Exception) -> None:
        if connection.closing or not connection.established:
            return
        self.lost_connections += 1
        if len(self.errors) < 50:
            self.errors.append(f"{connection.device.client_id}: connection lost: {exc!r}")
        if self.publishing and self.spec.qos:
            self.expected_acks -= self.per_device - connection.acked
            self.check_finished()

    # publishing

    def check_finished(self) -> None:
        if self.publishing and self.acked >= self.expected_acks and not self.finished.done():
            self.finished.set_result(None)

    async def publish_all(self) -> bool:
        """Send every message; True if all went out (and, at QoS 1, all were acknowledged)."""
        spec = self.spec
        self.publishing = True
        live = [c for c in self.connections if not c.lost]
        self.expected_acks = len(live) * self.per_device if spec.qos else 0
        try:
            async with asyncio.timeout(spec.run_timeout):
                if spec.rate is not None:
                    await self._paced(live, spec.rate)
                elif spec.qos:
                    for connection in live:
                        connection.send(spec.window)
                else:
                    await self._burst(live)
                if spec.qos:
                    self.check_finished()
                    await self.finished
                else:
                    await self._drained(live)
        except TimeoutError:
            self.errors.append(f"run timed out after {spec.run_timeout} s")
            return False
        return True

    async def _burst(self, active: list[_DeviceConnection]) -> None:
        """QoS 0 as fast as possible: 16 messages per device per pass, honouring backpressure."""
        while active:
            remaining = []
            for connection in active:
                if connection.lost:
                    continue
                if not connection.paused:
                    connection.send(16)
                if connection.next_seq < self.per_device:
                    remaining.append(connection)
            active = remaining
            if active and all(c.paused for c in active):
                self.writable.clear()
                await self.writable.wait()
            else:
                await asyncio.sleep(0)

    async def _paced(self, active: list[_DeviceConnection], rate: float) -> None:
        """Round-robin over devices so each sends every `devices / rate` seconds.

        The round goes in a fixed shuffled order, as independent devices would publish:
        in id order, the first devices (those a `--trigger-share` trigger matches) would all
        publish at the same moment of every round.
        """
        active = active[:]
        random.Random(0).shuffle(active)
        start = time.perf_counter()
        total = len(active) * self.per_device
        sent = 0
        pointer = 0
        while active:
            due = min(total, int(rate * (time.perf_counter() - start)) + 1)
            idle_scans = 0
            while sent < due and idle_scans < len(active):
                connection = active[pointer]
                pointer = pointer + 1 if pointer + 1 < len(active) else 0
                if connection.can_send():
                    connection.send(1)
                    sent += 1
                    idle_scans = 0
                else:
                    idle_scans += 1
            self.max_pacer_lag = max(self.max_pacer_lag, due - sent)
            if sent >= total:
                return
            if idle_scans >= len(active):
                active = [c for c in active if c.next_seq < self.per_device and not c.lost]
                pointer = 0
            await asyncio.sleep(_PACER_TICK)

    async def _drained(self, live: list[_DeviceConnection]) -> None:
        """QoS 0 is done once every byte has left our buffers for the kernel."""
        while any(
            c.transport is not None and not c.lost and c.transport.get_write_buffer_size()
            for c in live
        ):
            await asyncio.sleep(0.005)

    async def close_all(self) -> None:
        for connection in self.connections:
            connection.close()
        waiting = [c.closed for c in self.connections if not c.closed.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=_CLOSE_TIMEOUT)
        for connection in self.connections:
            if not connection.closed.done() and connection.transport is not None:
                connection.transport.abort()


async def _recv(conn: Connection, timeout: float) -> Any:
    """Wait for the parent without blocking the loop (the devices keep being served)."""
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, conn.poll, timeout):
        raise TimeoutError("no word from the parent process")
    return conn.recv()


async def _worker(conn: Connection, spec: LoadSpec, devices: list[Device]) -> None:
    generator = _Generator(spec, devices)
    try:
        await generator.connect_all()
        conn.send({"connected": len(generator.connections), "errors": generator.errors[:20]})
        await _recv(conn, spec.run_timeout)  # "go"
        cpu_start = time.process_time()
        complete = await generator.publish_all()
        cpu = time.process_time() - cpu_start
        conn.send(
            WorkerResult(
                first_index=devices[0].index if devices else 0,
                devices=len(devices),
                connected=len(generator.connections),
                sent=generator.sent,
                acked=generator.acked,
                unexpected_packets=generator.unexpected_packets,
                lost_connections=generator.lost_connections,
                timed_out=not complete,
                cpu_seconds=cpu,
                max_pacer_lag=generator.max_pacer_lag,
                errors=generator.errors[:50],
                send_ns=generator.send_ns.tobytes(),
                ack_ns=generator.ack_ns.tobytes(),
            )
        )
        await _recv(conn, spec.run_timeout)  # "close": the sink has seen everything
    finally:
        await generator.close_all()


def worker_main(conn: Connection, spec: LoadSpec, devices: list[Device]) -> None:
    """Entry point of a generator process: connect, report, publish on "go", report, close."""
    import uvloop

    try:
        uvloop.run(_worker(conn, spec, devices))
    finally:
        conn.close()


class Subscriber(asyncio.Protocol):
    """The Mosquitto side's one consumer, subscribed to `#`; records when each id arrives.

    All messages read in one `data_received` share one timestamp (they did arrive together),
    and their PUBACKs go out in one write.
    """

    def __init__(self, client_id: str, qos: int, total: int) -> None:
        loop = asyncio.get_running_loop()
        self.client_id = client_id
        self.qos = qos
        self.total = total
        self.recv_ns = array("q", bytes(8 * total))
        self.received = 0
        self.duplicates = 0
        self.foreign = 0
        self.last_ns = 0
        self.transport: asyncio.Transport | None = None
        self.decoder = PacketDecoder()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.complete = asyncio.Event()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport implements asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(Connect(self.client_id, keepalive=600).encode())

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        now = time.perf_counter_ns()
        acks = []
        recv_ns = self.recv_ns
        while (packet := self.decoder.next_packet()) is not None:
            if type(packet) is Publish:
                if packet.qos:
                    acks.append(PubAck(packet.packet_id).encode())
                value = payload_value(packet.payload)
                index = -1 if value is None else int(value)
                if not 0 <= index < self.total:
                    self.foreign += 1
                elif recv_ns[index]:
                    self.duplicates += 1
                else:
                    recv_ns[index] = now
                    self.received += 1
                    self.last_ns = now
            elif isinstance(packet, ConnAck):
                if packet.return_code != ConnectReturnCode.ACCEPTED:
                    self.ready.set_exception(ConnectionError(repr(packet.return_code)))
                elif self.transport is not None:
                    subscribe = Subscribe(1, (("#", self.qos),))
                    self.transport.write(subscribe.encode())
            elif isinstance(packet, SubAck) and not self.ready.done():
                self.ready.set_result(None)
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        if self.received >= self.total:
            self.complete.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed before SUBACK"))
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(self) -> None:
        if self.transport is not None and not self.closed.done():
            self.transport.write(Disconnect().encode())
            self.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), _CLOSE_TIMEOUT)


async def connect_subscriber(
    host: str,
    port: int,
    ca_file: str,
    cert_bundle: str,
    qos: int,
    total: int,
    client_id: str = "bench-subscriber",
) -> Subscriber:
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(cert_bundle)
    subscriber = Subscriber(client_id, qos, total)
    await asyncio.get_running_loop().create_connection(
        lambda: subscriber, host, port, ssl=context, server_hostname="localhost"
    )
    await asyncio.wait_for(subscriber.ready, 10)
    return subscriber
