"""The device CA: persistence, and what it will and will not sign."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from astraea.pairing.ca import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    DEVICE_CERT_VALIDITY,
    CAStoreError,
    CertificateAuthority,
    InvalidCSR,
)
from astraea.pairing.cert_verify import verify_device_certificate

REALM = "test"
DEVICE_ID = "2TBn-jNESuuHamE2Zo1anA"


def make_csr(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str = f"{REALM}/{DEVICE_ID}",
    organization: str = "Devices",
) -> str:
    """A CSR like the official SDK's: O=Devices, CN=<realm>/<device_id>, SHA-256."""
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca")


def never_revoked(serial: int) -> bool:
    return False


# --- issuing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(ec.generate_private_key(ec.SECP256R1()), id="ec-p256"),
        pytest.param(ec.generate_private_key(ec.SECP384R1()), id="ec-p384"),
        pytest.param(rsa.generate_private_key(65537, 2048), id="rsa-2048"),
        pytest.param(rsa.generate_private_key(65537, 3072), id="rsa-3072"),
    ],
)
def test_issued_certificate_is_a_client_certificate_for_the_device(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> None:
    before = datetime.now(UTC)
    issued = ca.issue_device_certificate(make_csr(key), REALM, DEVICE_ID)

    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.public_key() == key.public_key()
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test/" + DEVICE_ID)])
    assert cert.issuer == ca.certificate.subject
    assert cert.serial_number == issued.serial
    assert cert.not_valid_after_utc == issued.not_after
    assert before + DEVICE_CERT_VALIDITY - timedelta(seconds=1) <= issued.not_after
    assert issued.not_after <= datetime.now(UTC) + DEVICE_CERT_VALIDITY
    assert cert.not_valid_before_utc < before

    extensions = cert.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_agreement is isinstance(key, ec.EllipticCurvePrivateKey)
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    subject_key = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert subject_key == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    authority = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert authority.key_identifier == ca_key_id.value.digest
    assert issued.aki == ca_key_id.value.digest.hex()

    assert verify_device_certificate(ca, issued.pem, datetime.now(UTC), never_revoked).valid


@pytest.mark.parametrize(
    ("common_name", "organization"),
    [
        ("other/AAAAAAAAAAAAAAAAAAAAAA", "Devices"),
        ("test/" + DEVICE_ID, "Evil Corp"),
        ("admin", "Devices"),
    ],
)
def test_csr_subject_is_ignored(
    ca: CertificateAuthority, common_name: str, organization: str
) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), common_name, organization)
    issued = ca.issue_device_certificate(csr, REALM, DEVICE_ID)
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    assert cert.subject.rfc4514_string() == f"CN=test/{DEVICE_ID}"


def test_csr_extensions_are_ignored(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    issued = ca.issue_device_certificate(
        csr.public_bytes(serialization.Encoding.PEM).decode(), REALM, DEVICE_ID
    )
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_surrounding_text_and_whitespace_are_tolerated(ca: CertificateAuthority) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    ca.issue_device_certificate(f"explanatory text\n\n  {csr}\n\n", REALM, DEVICE_ID)


def test_serials_are_unique(ca: CertificateAuthority) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    serials = {ca.issue_device_certificate(csr, REALM, DEVICE_ID).serial for _ in range(20)}
    assert len(serials) == 20
    assert all(serial > 0 for serial in serials)


def test_custom_validity(ca: CertificateAuthority) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    issued = ca.issue_device_certificate(csr, REALM, DEVICE_ID, validity=timedelta(hours=1))
    remaining = issued.not_after - datetime.now(UTC)
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)


def test_validity_never_outlasts_the_ca(ca: CertificateAuthority) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    issued = ca.issue_device_certificate(csr, REALM, DEVICE_ID, validity=timedelta(days=100_000))
    assert issued.not_after == ca.certificate.not_valid_after_utc


@pytest.mark.parametrize("validity", [timedelta(0), timedelta(seconds=-1)])
def test_non_positive_validity_is_refused(ca: CertificateAuthority, validity: timedelta) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="validity"):
        ca.issue_device_certificate(csr, REALM, DEVICE_ID, validity=validity)


@pytest.mark.parametrize(
    ("realm", "device_id"),
    [
        ("Test", DEVICE_ID),
        ("te/st", DEVICE_ID),
        ("", DEVICE_ID),
        (REALM, "not-an-id"),
        (REALM, DEVICE_ID[:-1] + "B"),  # stray bits in the last character
        (REALM, DEVICE_ID + "AAAA"),  # extended id
    ],
)
def test_identity_must_be_canonical(ca: CertificateAuthority, realm: str, device_id: str) -> None:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError):
        ca.issue_device_certificate(csr, realm, device_id)


# --- invalid CSRs -----------------------------------------------------------------------------


def _tampered_csr() -> str:
    """A well-formed CSR whose signature no longer covers its content."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = x509.load_pem_x509_csr(make_csr(key, organization="AAAAAAAA").encode()).public_bytes(
        serialization.Encoding.DER
    )
    tampered = x509.load_der_x509_csr(der.replace(b"AAAAAAAA", b"BBBBBBBB"))
    return tampered.public_bytes(serialization.Encoding.PEM).decode()


def _private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


INVALID_CSRS: dict[str, Callable[[CertificateAuthority], str]] = {
    "empty": lambda ca: "",
    "garbage": lambda ca: "not a csr at all",
    "truncated": lambda ca: (
        make_csr(ec.generate_private_key(ec.SECP256R1()))[:200]
        + "\n-----END CERTIFICATE REQUEST-----\n"
    ),
    "corrupt-base64": lambda ca: make_csr(ec.generate_private_key(ec.SECP256R1())).replace(
        "M", "!", 3
    ),
    "two-csrs": lambda ca: make_csr(ec.generate_private_key(ec.SECP256R1())) * 2,
    "csr-and-key": lambda ca: (
        make_csr(ec.generate_private_key(ec.SECP256R1())) + _private_key_pem()
    ),
    "certificate": lambda ca: ca.ca_cert_pem,
    "private-key": lambda ca: _private_key_pem(),
    "bad-signature": lambda ca: _tampered_csr(),
    "ec-p521": lambda ca: make_csr(ec.generate_private_key(ec.SECP521R1())),
    "ec-secp256k1": lambda ca: make_csr(ec.generate_private_key(ec.SECP256K1())),
    "rsa-1024": lambda ca: make_csr(rsa.generate_private_key(65537, 1024)),
    "ed25519": lambda ca: make_csr(ed25519.Ed25519PrivateKey.generate()),
}


@pytest.mark.parametrize("name", INVALID_CSRS)
def test_invalid_csr_is_refused(ca: CertificateAuthority, name: str) -> None:
    csr_pem = INVALID_CSRS[name](ca)
    with pytest.raises(InvalidCSR):
        ca.issue_device_certificate(csr_pem, REALM, DEVICE_ID)


def test_invalid_csr_is_a_value_error() -> None:
    assert issubclass(InvalidCSR, ValueError)


# --- the CA itself and its files --------------------------------------------------------------


def test_ca_certificate(ca: CertificateAuthority) -> None:
    cert = x509.load_pem_x509_certificate(ca.ca_cert_pem.encode())
    assert cert == ca.certificate
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3600) < lifetime < timedelta(days=3700)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)


def test_files_are_written_with_a_private_key_mode(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "ca"
    CertificateAuthority.load_or_create(directory)
    assert stat.S_IMODE(os.stat(directory / CA_KEY_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
    assert sorted(p.name for p in directory.iterdir()) == [CA_CERT_FILE, CA_KEY_FILE]


def test_reload_gives_the_same_ca(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    key_before = (tmp_path / CA_KEY_FILE).read_bytes()
    second = CertificateAuthority.load_or_create(tmp_path)
    assert second.ca_cert_pem == first.ca_cert_pem
    assert (tmp_path / CA_KEY_FILE).read_bytes() == key_before
    issued = second.issue_device_certificate(
        make_csr(ec.generate_private_key(ec.SECP256R1())), REALM, DEVICE_ID
    )
    assert verify_device_certificate(first, issued.pem, datetime.now(UTC), never_revoked).valid


def test_lost_certificate_is_recreated_from_the_kept_key(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    issued = first.issue_device_certificate(
        make_csr(ec.generate_private_key(ec.SECP256R1())), REALM, DEVICE_ID
    )
    (tmp_path / CA_CERT_FILE).unlink()
    second = CertificateAuthority.load_or_create(tmp_path)
    assert verify_device_certificate(second, issued.pem, datetime.now(UTC), never_revoked).valid


def test_certificate_without_key_is_an_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    (tmp_path / CA_KEY_FILE).unlink()
    with pytest.raises(CAStoreError, match="missing"):
        CertificateAuthority.load_or_create(tmp_path)
    assert not (tmp_path / CA_KEY_FILE).exists()


def test_mismatched_key_is_an_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "a")
    CertificateAuthority.load_or_create(tmp_path / "b")
    (tmp_path / "a" / CA_KEY_FILE).write_bytes((tmp_path / "b" / CA_KEY_FILE).read_bytes())
    with pytest.raises(CAStoreError, match="does not match"):
        CertificateAuthority.load_or_create(tmp_path / "a")


def test_unsupported_key_type_is_an_error(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / CA_KEY_FILE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(CAStoreError, match="Ed25519"):
        CertificateAuthority.load_or_create(tmp_path)


def _self_signed(key: rsa.RSAPrivateKey, *, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator CA")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def test_operator_supplied_rsa_ca_is_usable(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    authority = CertificateAuthority(key, _self_signed(key, ca=True))
    issued = authority.issue_device_certificate(
        make_csr(ec.generate_private_key(ec.SECP256R1())), REALM, DEVICE_ID
    )
    assert verify_device_certificate(authority, issued.pem, datetime.now(UTC), never_revoked).valid


def test_non_ca_certificate_is_refused() -> None:
    key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(CAStoreError, match="not marked as a CA"):
        CertificateAuthority(key, _self_signed(key, ca=False))
