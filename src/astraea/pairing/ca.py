"""The instance certificate authority that signs device client certificates.

One CA serves every realm, as in Astarte: the broker trusts it and reads the device identity
from the certificate CN alone, so the CA, not the device, decides that CN.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from astraea.pairing.cert_verify import split_identity
from astraea.tls_material import private_key_pem, single_pem_block, write_file

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEVICE_CERT_VALIDITY",
    "CAStoreError",
    "CertificateAuthority",
    "InvalidCSR",
    "IssuedCertificate",
]

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.crt"
CA_VALIDITY = timedelta(days=3650)
# 2190 h (~91 days), the expiry of Astarte's reference CFSSL setup. Short enough that a
# leaked or superseded device key ages out on its own; long enough for the official SDKs,
# which check their certificate (and renew it through the credentials endpoint) only when
# `connect()` is called, while their MQTT client reconnects with the certificate it already
# has: a week-long certificate would lock out any device process that outlives it.
DEVICE_CERT_VALIDITY = timedelta(hours=2190)
# Tolerates devices whose clock runs a little behind ours.
_BACKDATE = timedelta(minutes=5)
_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Astraea"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Astraea Device CA"),
    ]
)
_DEVICE_CURVES = (ec.SECP256R1, ec.SECP384R1)
_MIN_RSA_BITS = 2048
# Larger keys only make every TLS handshake at the broker slower.
_MAX_RSA_BITS = 8192

CAPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class InvalidCSR(ValueError):
    """The CSR is not one well-formed, self-signed PEM request for an acceptable key."""


class CAStoreError(RuntimeError):
    """The CA files on disk are incomplete or inconsistent; refusing to replace them."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A signed device certificate plus what must be stored to revoke it when superseded.

    `serial` is a random positive integer of up to 159 bits (too big for a 64-bit SQL
    integer: store it as text); `aki` is the issuing CA's key identifier in lowercase hex.
    """

    pem: str
    serial: int
    aki: str
    not_after: datetime


class CertificateAuthority:
    """Signs device certificates; immutable, so one instance can serve concurrent requests.

    The constructor accepts any EC or RSA CA (an operator's own, or a test's); use
    `load_or_create` for the instance's persisted one.
    """

    def __init__(self, private_key: CAPrivateKey, certificate: x509.Certificate) -> None:
        if certificate.public_key() != private_key.public_key():
            raise CAStoreError("CA certificate does not match the CA private key")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            subject_key = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound as missing:
            raise CAStoreError(f"CA certificate is unusable: {missing}") from missing
        if not constraints.value.ca:
            raise CAStoreError("CA certificate is not marked as a CA")
        self._private_key = private_key
        self._certificate = certificate
        self._authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            subject_key.value
        )
        self._aki = subject_key.value.digest.hex()

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """Load the CA from `directory`, creating it on first start.

        Every issued certificate depends on these files, so a half-present CA (certificate
        without key) is an error to fix by hand rather than a reason to start afresh.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = directory / CA_KEY_FILE
        cert_path = directory / CA_CERT_FILE
        if cert_path.exists() and not key_path.exists():
            raise CAStoreError(f"{cert_path} exists but its key {key_path} is missing")
        if not key_path.exists():
            new_key = ec.generate_private_key(ec.SECP256R1())
            write_file(key_path, private_key_pem(new_key), private=True, overwrite=False)
        private_key = _load_ca_key(key_path)
        if not cert_path.exists():
            pem = _self_signed_ca(private_key).public_bytes(serialization.Encoding.PEM)
            write_file(cert_path, pem, private=False, overwrite=False)
        return cls(private_key, x509.load_pem_x509_certificate(cert_path.read_bytes()))

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def ca_cert_pem(self) -> str:
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue_device_certificate(
        self,
        csr_pem: str,
        realm: str,
        device_id: str,
        validity: timedelta = DEVICE_CERT_VALIDITY,
    ) -> IssuedCertificate:
        """Sign the CSR's key into a client certificate for `<realm>/<device_id>`.

        The CSR only proves possession of the key; its subject and extensions are ignored,
        so a device cannot obtain a certificate naming another device.
        """
        common_name = f"{realm}/{device_id}"
        split_identity(common_name)
        if validity <= timedelta(0):
            raise ValueError("validity must be positive")
        public_key = _csr_public_key(csr_pem)
        now = datetime.now(UTC)
        not_after = min(now + validity, self._certificate.not_valid_after_utc)
        is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=is_ec,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_id, critical=False)
            .sign(self._private_key, hashes.SHA256())
        )
        return IssuedCertificate(
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            serial=certificate.serial_number,
            aki=self._aki,
            not_after=certificate.not_valid_after_utc,
        )


def _csr_public_key(csr_pem: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        csr = x509.load_pem_x509_csr(single_pem_block(csr_pem, "CERTIFICATE REQUEST"))
        public_key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as error:
        raise InvalidCSR(f"not a valid PEM CSR: {error}") from error
    if not signed:
        raise InvalidCSR("CSR signature does not match its public key")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _DEVICE_CURVES):
            raise InvalidCSR(f"unsupported EC curve {public_key.curve.name}")
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if not _MIN_RSA_BITS <= public_key.key_size <= _MAX_RSA_BITS:
            raise InvalidCSR(f"unsupported RSA key size {public_key.key_size}")
        return public_key
    raise InvalidCSR(f"unsupported key type {type(public_key).__name__}")


def _load_ca_key(path: Path) -> CAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAStoreError(f"{path} holds a {type(key).__name__}, not an EC or RSA key")
    return key


def _self_signed_ca(private_key: CAPrivateKey) -> x509.Certificate:
    now = datetime.now(UTC)
    key_id = x509.SubjectKeyIdentifier.from_public_key(private_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(_CA_NAME)
        .issuer_name(_CA_NAME)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        # Path length 0: device certificates hang directly off this CA, never an intermediate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(key_id, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id),
            critical=False,
        )
        .sign(private_key, hashes.SHA256())
    )
