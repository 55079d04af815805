"""Key pairs, certificates and PEM files that `astraea up` needs before it can listen.

Everything here is created on first start and reused afterwards, so that restarting the
process keeps the broker certificate devices have pinned and the key tokens are signed with.
Files are published atomically (written to a temporary name, then linked or renamed into
place): a concurrent reader never sees half a key, and of two processes racing to create the
same file exactly one wins while the other reads the winner's copy.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "KeyAlgorithm",
    "ensure_keypair",
    "ensure_server_certificate",
    "generate_keypair",
    "private_key_pem",
    "single_pem_block",
    "write_file",
]

KeyAlgorithm = Literal["rsa", "ec"]

SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
# A self-signed certificate is trusted by pinning, not by a CA/Browser Forum root store, so the
# 398-day public limit does not bind it; a year keeps pins stable, and renewing a month early
# means a restart never hands devices a certificate about to lapse.
SERVER_CERT_VALIDITY = timedelta(days=365)
SERVER_CERT_RENEW_BEFORE = timedelta(days=30)

_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
_DIRECTORY_MODE = 0o700
_PEM_BEGIN = re.compile(r"-----BEGIN ([^\r\n-]+)-----")
_KEYPAIR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def generate_keypair(algorithm: KeyAlgorithm) -> tuple[str, str]:
    """Return `(private_pem, public_pem)`: PKCS#8 and SubjectPublicKeyInfo, as PyJWT reads them.

    RSA-2048 is what RS256 tokens (the official device SDK's choice) need; EC P-256 is for
    ES256, which is what `astartectl utils gen-keypair` produces.
    """
    private_key = _new_private_key(algorithm)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_key_pem(private_key).decode("ascii"), public_pem.decode("ascii")


def ensure_keypair(
    directory: Path, name: str, algorithm: KeyAlgorithm = "rsa"
) -> tuple[Path, Path]:
    """Return `(private_path, public_path)` of `<name>_private.pem` / `<name>_public.pem`.

    An existing private key is always kept (whatever its algorithm: `algorithm` only applies
    when creating one), because tokens already signed with it must stay valid; the public half
    is re-derived from it if missing or stale.
    """
    if not _KEYPAIR_NAME.fullmatch(name):
        raise ValueError(f"invalid key pair name {name!r}")
    _ensure_directory(directory)
    private_path = directory / f"{name}_private.pem"
    public_path = directory / f"{name}_public.pem"
    if not private_path.exists():
        write_file(
            private_path,
            private_key_pem(_new_private_key(algorithm)),
            private=True,
            overwrite=False,
        )
    private_key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        write_file(public_path, public_pem, private=False, overwrite=True)
    return private_path, public_path


def ensure_server_certificate(
    directory: Path, hostnames: Sequence[str] = ("localhost", "127.0.0.1")
) -> tuple[Path, Path]:
    """Return `(cert_path, key_path)` of a self-signed TLS server certificate for `hostnames`.

    Used when the operator gives the broker no certificate of their own. The existing pair is
    reused unless it is unreadable, mismatched, close to expiry or does not name every
    requested host (IP literals become IP SANs, anything else a DNS SAN), so adding a host
    name to the configuration takes effect on the next start.
    """
    if isinstance(hostnames, str) or not hostnames or not all(hostnames):
        raise ValueError("hostnames must be a non-empty sequence of non-empty names")
    _ensure_directory(directory)
    cert_path = directory / SERVER_CERT_FILE
    key_path = directory / SERVER_KEY_FILE
    now = datetime.now(UTC)
    if not _server_pair_usable(cert_path, key_path, hostnames, now):
        key = ec.generate_private_key(ec.SECP256R1())
        write_file(key_path, private_key_pem(key), private=True, overwrite=True)
        certificate = _self_signed_server_certificate(key, hostnames, now)
        write_file(
            cert_path,
            certificate.public_bytes(serialization.Encoding.PEM),
            private=False,
            overwrite=True,
        )
    return cert_path, key_path


def private_key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """Serialize unencrypted PKCS#8: the files are protected by their mode, not a passphrase."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def single_pem_block(text: str, label: str) -> bytes:
    """Return the one PEM block of `text`, which must carry `label`; raise ValueError otherwise.

    Loaders silently take the first of several blocks, so a bundle (or a certificate pasted
    where a request was expected) would otherwise be accepted half-read.
    """
    labels = _PEM_BEGIN.findall(text)
    if labels != [label]:
        raise ValueError(f"expected exactly one PEM {label} block")
    begin = text.index(f"-----BEGIN {label}-----")
    end_marker = f"-----END {label}-----"
    end = text.find(end_marker, begin)
    if end < 0:
        raise ValueError(f"unterminated PEM {label} block")
    return text[begin : end + len(end_marker)].encode("ascii")


def write_file(path: Path, data: bytes, *, private: bool, overwrite: bool) -> None:
    """Publish `data` at `path` atomically, mode 0600 if `private` else 0644.

    With `overwrite=False` an existing file wins and is left untouched, which is how two
    processes starting at once agree on one key instead of each keeping its own.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(
        temporary,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL,
        _PRIVATE_MODE if private else _PUBLIC_MODE,
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _new_private_key(algorithm: KeyAlgorithm) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def _ensure_directory(directory: Path) -> None:
    directory.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)


def _server_pair_usable(
    cert_path: Path, key_path: Path, hostnames: Sequence[str], now: datetime
) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (
        certificate.public_key() == key.public_key()
        and certificate.not_valid_after_utc - SERVER_CERT_RENEW_BEFORE > now
        and all(_san(host) in names for host in hostnames)
    )


def _self_signed_server_certificate(
    key: ec.EllipticCurvePrivateKey, hostnames: Sequence[str], now: datetime
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + SERVER_CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_san(host) for host in dict.fromkeys(hostnames)]),
            critical=False,
        )
        .add_extension(key_id, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
