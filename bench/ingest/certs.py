"""Device identities and TLS material for the ingest benchmark.

Every device gets its own EC P-256 key and certificate (CN `<realm>/<device_id>`), as real
devices do; keys and certificates are cached on disk because a thousand of them take a few
seconds to make and the benchmark is run many times.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from astraea.core.device_id import encode_device_id

_VALIDITY = timedelta(days=30)


def device_ids(count: int, seed: str = "astraea-bench") -> list[str]:
    """Stable canonical 22-character ids, so cached certificates stay valid between runs."""
    return [
        encode_device_id(hashlib.sha256(f"{seed}-{index}".encode()).digest()[:16])
        for index in range(count)
    ]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def csr_pem(key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    """A CSR as the Pairing API expects it (the CA decides the final CN anyway)."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def write_private(path: Path, data: bytes) -> None:
    """Readable by everyone on purpose: Mosquitto drops root to its own user before reading
    its key, and these are throwaway benchmark keys."""
    path.write_bytes(data)
    os.chmod(path, 0o644)


class ThrowawayCA:
    """A CA for the Mosquitto side: signs the broker's and every device's certificate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_file = directory / "ca.crt"
        key_file = directory / "ca.key"
        if self.cert_file.exists() and key_file.exists():
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            self.key = loaded
            self.cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.key = new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Astraea bench throwaway CA")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        write_private(key_file, key_pem(self.key))
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, key: ec.EllipticCurvePrivateKey, common_name: str, *, server: bool = False
    ) -> bytes:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def server_pair(self) -> tuple[Path, Path]:
        cert_file = self.directory / "server.crt"
        key_file = self.directory / "server.key"
        if not (cert_file.exists() and key_file.exists()):
            key = new_key()
            write_private(key_file, key_pem(key))
            cert_file.write_bytes(self.issue(key, "localhost", server=True))
        return cert_file, key_file

    def client_bundle(self, common_name: str) -> Path:
        """One PEM file with certificate and key, which `load_cert_chain` reads at once."""
        path = self.directory / "clients" / f"{common_name.replace('/', '_')}.pem"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = new_key()
            write_private(path, self.issue(key, common_name) + key_pem(key))
        return path
