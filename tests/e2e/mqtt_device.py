"""A device as the platform meets it in the field, without the official SDK in between.

It is paired like a real device (registration, a CSR with a key it keeps, a certificate from
the Pairing API), then speaks Astarte MQTT v1 over TLS through paho-mqtt (`MqttDevice`);
`RawDevice` from the transport tests takes over for what paho will not do on demand
(duplicates with DUP, withheld PUBREL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.ingest.ingest_support import bson_value
from tests.transport.transport_support import PahoDevice, Pki

CertFiles = tuple[Path, Path]  # certificate and private key, PEM


@dataclass(frozen=True)
class Credentials:
    realm: str
    device_id: str
    secret: str
    cert: CertFiles

    @property
    def root(self) -> str:
        """The topic the device owns, with everything below it."""
        return f"{self.realm}/{self.device_id}"


def broker_pki(directory: Path, broker_cert: Path) -> Pki:
    """Client-side TLS material for the platform's broker: clients trust the broker's
    certificate, and the PKI's own CA, unknown to the platform, issues certificates that the
    broker must refuse."""
    directory.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(Pki.create(directory), ca_file=broker_cert)


async def register(
    http: httpx.AsyncClient, realm: str, device_id: str, agent: Mapping[str, str]
) -> str:
    """Registers a device through the Pairing agent API; returns its credentials secret."""
    response = await http.post(
        f"/pairing/v1/{realm}/agent/devices", json={"data": {"hw_id": device_id}}, headers=agent
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["data"]["credentials_secret"]
    return secret


def new_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A fresh device key and a PEM CSR for it (the CA decides the subject anyway)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "astraea-e2e-device")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def save_cert(directory: Path, certificate_pem: str, key: ec.EllipticCurvePrivateKey) -> CertFiles:
    """Writes a certificate and its key where TLS clients load them from."""
    serial = x509.load_pem_x509_certificate(certificate_pem.encode()).serial_number
    cert_file, key_file = directory / f"{serial:x}.crt", directory / f"{serial:x}.key"
    cert_file.write_text(certificate_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def request_certificate(
    http: httpx.AsyncClient, realm: str, device_id: str, secret: str, directory: Path
) -> CertFiles:
    """A certificate from the Pairing API for a fresh key; each request supersedes the
    device's previous certificate."""
    key, csr = new_csr()
    response = await http.post(
        f"/pairing/v1/{realm}/devices/{device_id}/protocols/astarte_mqtt_v1/credentials",
        json={"data": {"csr": csr}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 201, response.text
    return save_cert(directory, response.json()["data"]["client_crt"], key)


async def pair(
    http: httpx.AsyncClient, realm: str, device_id: str, secret: str, directory: Path
) -> Credentials:
    """Credentials of a registered device, with a certificate it may connect with."""
    cert = await request_certificate(http, realm, device_id, secret, directory)
    return Credentials(realm, device_id, secret, cert)


class MqttDevice(PahoDevice):
    """A paired device on paho; the client id is arbitrary since the broker keys everything
    on the certificate."""

    def __init__(
        self, pki: Pki, port: int, credentials: Credentials, *, clean_session: bool = True
    ) -> None:
        super().__init__(
            pki,
            port,
            credentials.cert,
            clean_session=clean_session,
            client_id=credentials.device_id,
        )
        self.root = credentials.root

    async def declare(self, introspection: Mapping[str, tuple[int, int]]) -> None:
        """Publishes its introspection (name -> major, minor) and waits until it is stored."""
        payload = ";".join(
            f"{name}:{major}:{minor}" for name, (major, minor) in introspection.items()
        )
        await self.wait_acked(await self.publish(self.root, payload.encode(), 2))

    async def send(self, interface: str, path: str, payload: bytes, qos: int = 2) -> int:
        """Publishes a raw data payload; returns its message id."""
        return await self.publish(f"{self.root}/{interface}{path}", payload, qos)

    async def store(
        self, interface: str, path: str, value: object, timestamp: datetime | None = None
    ) -> None:
        """Sends a value as the SDK does and waits for its acknowledgement, which the platform
        only gives once the value is durably stored."""
        await self.wait_acked(await self.send(interface, path, bson_value(value, timestamp)))
