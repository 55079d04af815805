"""Helpers for the transport's network tests: a throwaway PKI, recording hooks, two clients.

`PahoDevice` is the real-world client (paho-mqtt in its own thread); `RawDevice` speaks
MQTT byte by byte over asyncio TLS for what paho will not do on demand (silence, garbage,
duplicates, withheld acks).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import queue
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from astraea.transport.hooks import DisconnectReason, RejectMessage, TransportHooks
from astraea.transport.packets import Connect, Packet, PacketDecoder

REALM = "test"
DEVICE_ID = "AAAAAAAAAAAAAAAAAAAD6A"
OTHER_DEVICE_ID = "AAAAAAAAAAAAAAAAAAAD6Q"
ROOT = f"{REALM}/{DEVICE_ID}"
WAIT = 5.0


async def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until `predicate()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# -- certificates -------------------------------------------------------------------------


@dataclass
class _Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and client certificates on demand."""

    directory: Path
    ca: _Authority
    rogue_ca: _Authority
    ca_file: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca, rogue = _authority("Test CA"), _authority("Rogue CA")
        ca_file = _write_pem(directory / "ca.crt", ca.certificate)
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        server = _issue(ca, key, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, names)
        server_cert = _write_pem(directory / "server.crt", server)
        server_key = _write_key(directory / "server.key", key)
        return cls(directory, ca, rogue, ca_file, server_cert, server_key)

    def client_cert(self, common_name: str, *, rogue: bool = False) -> tuple[Path, Path]:
        """Certificate and key files for a client with this CN."""
        key = ec.generate_private_key(ec.SECP256R1())
        authority = self.rogue_ca if rogue else self.ca
        cert = _issue(authority, key, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        stem = common_name.replace("/", "_") + ("-rogue" if rogue else "")
        return (
            _write_pem(self.directory / f"{stem}.crt", cert),
            _write_key(self.directory / f"{stem}.key", key),
        )

    def client_context(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None:
            context.load_cert_chain(*cert)
        return context


def _authority(name: str) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(key, certificate)


def _issue(
    authority: _Authority,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(authority.key, hashes.SHA256())


def _write_pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# -- hooks --------------------------------------------------------------------------------


@dataclass
class RecordingHooks(TransportHooks):
    """Records every call; `allow`, `publish_gate` and `reject_payload` steer the answers."""

    allow: bool = True
    publish_gate: asyncio.Event | None = None
    reject_payload: bytes | None = None
    events: list[tuple[Any, ...]] = field(default_factory=list)
    published: list[tuple[str, bytes, int]] = field(default_factory=list)
    certificates: list[bytes] = field(default_factory=list)

    async def authenticate(self, realm: str, device_id: str, peer_cert_der: bytes) -> bool:
        self.events.append(("authenticate", realm, device_id))
        self.certificates.append(peer_cert_der)
        return self.allow

    async def on_connect(
        self, realm: str, device_id: str, peer_ip: str, session_present: bool
    ) -> None:
        self.events.append(("connect", realm, device_id, peer_ip, session_present))

    async def on_disconnect(self, realm: str, device_id: str, reason: DisconnectReason) -> None:
        self.events.append(("disconnect", realm, device_id, reason))

    async def on_publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        if self.publish_gate is not None:
            await self.publish_gate.wait()
        if payload == self.reject_payload:
            raise RejectMessage
        self.published.append((topic, payload, qos))

    async def on_subscribe(self, realm: str, device_id: str, granted: Any) -> None:
        self.events.append(("subscribe", realm, device_id, list(granted)))

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events if event[0] != "authenticate"]

    def disconnect_reasons(self) -> list[DisconnectReason]:
        return [event[3] for event in self.events if event[0] == "disconnect"]


# -- clients ------------------------------------------------------------------------------


async def _poll(source: queue.Queue[Any], timeout: float = WAIT) -> Any:
    """Next item a client thread produced, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return source.get_nowait()
        except queue.Empty:
            if time.monotonic() > deadline:
                raise AssertionError("nothing arrived in time") from None
            await asyncio.sleep(0.005)


class PahoDevice:
    """A paho-mqtt 3.1.1 client over TLS, run in paho's own network thread."""

    def __init__(
        self,
        pki: Pki,
        port: int,
        cert: tuple[Path, Path],
        *,
        clean_session: bool = True,
        client_id: str = "paho",
    ) -> None:
        self.port = port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert[0]), keyfile=str(cert[1]))
        # paho holds QoS 1/2 messages back past its window while QoS 0 ones overtake them;
        # without a window it sends everything in call order.
        self.client.max_inflight_messages_set(0)
        self.connections: queue.Queue[tuple[int, bool]] = queue.Queue()
        self.disconnections: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.acked: set[int] = set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    async def connect(self, keepalive: int = 60) -> tuple[int, bool]:
        """(CONNACK return code, session present) once the broker answered."""
        self.client.connect_async("127.0.0.1", self.port, keepalive=keepalive)
        self.client.loop_start()
        result: tuple[int, bool] = await _poll(self.connections)
        return result

    async def publish(self, topic: str, payload: bytes, qos: int) -> int:
        info = self.client.publish(topic, payload, qos)
        return info.mid

    async def wait_acked(self, mid: int) -> None:
        await eventually(lambda: mid in self.acked)

    async def subscribe(self, topic_filter: str, qos: int) -> list[int]:
        self.client.subscribe(topic_filter, qos)
        codes: list[int] = await _poll(self.subacks)
        return codes

    async def next_message(self, timeout: float = WAIT) -> paho.MQTTMessage:
        message: paho.MQTTMessage = await _poll(self.messages, timeout)
        return message

    def has_message(self) -> bool:
        return not self.messages.empty()

    async def wait_disconnected(self, timeout: float = WAIT) -> int:
        code: int = await _poll(self.disconnections, timeout)
        return code

    async def close(self) -> None:
        """Send DISCONNECT (if still connected) and stop the network thread."""
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.connections.put((code.value, flags.session_present))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        self.disconnections.put(code.value)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self.subacks.put([code.value for code in codes])

    def _on_publish(self, client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
        self.acked.add(mid)


class RawDevice:
    """MQTT spoken by hand over a TLS stream, for exact control of what goes on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._decoder = PacketDecoder()

    @classmethod
    async def open(cls, pki: Pki, port: int, cert: tuple[Path, Path] | None) -> RawDevice:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=pki.client_context(cert), server_hostname="localhost"
        )
        return cls(reader, writer)

    @classmethod
    async def connected(
        cls,
        pki: Pki,
        port: int,
        cert: tuple[Path, Path],
        *,
        keepalive: int = 60,
        clean_session: bool = True,
    ) -> tuple[RawDevice, Packet | None]:
        """A device that sent CONNECT, with the server's answer."""
        device = await cls.open(pki, port, cert)
        device.send(Connect("raw", keepalive, clean_session))
        return device, await device.receive()

    def send(self, *packets: Packet | bytes) -> None:
        for packet in packets:
            self.writer.write(packet if isinstance(packet, bytes) else packet.encode())

    async def receive(self, timeout: float = WAIT) -> Packet | None:
        """The next packet from the server; None once the connection is closed."""
        async with asyncio.timeout(timeout):
            while (packet := self._decoder.next_packet()) is None:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, ssl.SSLError):
                    return None
                if not data:
                    return None
                self._decoder.feed(data)
            return packet

    async def nothing_within(self, seconds: float) -> bool:
        """True if no packet (and no close) arrives within `seconds`."""
        try:
            await self.receive(seconds)
        except TimeoutError:
            return True
        return False

    async def is_closed(self, timeout: float = WAIT) -> bool:
        """Read (and drop) packets until the server closes the connection."""
        async with asyncio.timeout(timeout):
            while await self.receive(timeout) is not None:
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
