"""Device certificate verification: one test per Astarte cause, plus identity parsing."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from astraea.pairing.ca import CertificateAuthority, IssuedCertificate
from astraea.pairing.cert_verify import (
    VerifyCause,
    VerifyResult,
    common_name_of,
    format_timestamp,
    split_identity,
    verify_device_certificate,
)

REALM = "test"
DEVICE_ID = "2TBn-jNESuuHamE2Zo1anA"
IDENTITY = f"{REALM}/{DEVICE_ID}"
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])


class Authority:
    """A CA whose key the test holds, so it can sign certificates the real CA never would."""

    def __init__(self, name: x509.Name = CA_NAME) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_id = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(self.key_id, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca = CertificateAuthority(self.key, self.certificate)

    def sign(
        self,
        *,
        subject: x509.Name | None = None,
        issuer: x509.Name | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        extensions: list[x509.ExtensionType] | None = None,
        critical: bool = True,
    ) -> str:
        """A device certificate shaped like the CA's, with whatever the test overrides."""
        device_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, IDENTITY)])
                if subject is None
                else subject
            )
            .issuer_name(issuer or self.certificate.subject)
            .public_key(device_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(minutes=5))
            .not_valid_after(not_after or now + timedelta(days=7))
        )
        for extension in default_extensions() if extensions is None else extensions:
            builder = builder.add_extension(extension, critical=critical)
        return (
            builder.sign(signing_key or self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )


def key_usage(**flags: bool) -> x509.KeyUsage:
    values = {
        "digital_signature": False,
        "content_commitment": False,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": False,
        "crl_sign": False,
        "encipher_only": False,
        "decipher_only": False,
    }
    return x509.KeyUsage(**{**values, **flags})


def default_extensions() -> list[x509.ExtensionType]:
    return [
        x509.BasicConstraints(ca=False, path_length=None),
        key_usage(digital_signature=True, key_agreement=True),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
    ]


def without(kind: type[x509.ExtensionType]) -> list[x509.ExtensionType]:
    return [extension for extension in default_extensions() if not isinstance(extension, kind)]


def replacing(replacement: x509.ExtensionType) -> list[x509.ExtensionType]:
    return [*without(type(replacement)), replacement]


def never_revoked(serial: int) -> bool:
    return False


def device_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, IDENTITY)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def authority() -> Authority:
    return Authority()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca")


@pytest.fixture
def issued(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue_device_certificate(device_csr(), REALM, DEVICE_ID)


def cause_of(
    ca: CertificateAuthority,
    cert_pem: str,
    now: datetime | None = None,
    is_revoked: Callable[[int], bool] = never_revoked,
) -> VerifyCause | None:
    result = verify_device_certificate(ca, cert_pem, now or datetime.now(UTC), is_revoked)
    assert result.valid is (result.cause is None)
    return result.cause


# --- valid ------------------------------------------------------------------------------------


def test_issued_certificate_is_valid(ca: CertificateAuthority, issued: IssuedCertificate) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC) if issued.not_after.year > 2040 else datetime.now(UTC)
    seen: list[int] = []

    def is_revoked(serial: int) -> bool:
        seen.append(serial)
        return False

    result = verify_device_certificate(ca, issued.pem, now, is_revoked)
    assert result == VerifyResult(valid=True, timestamp=now, until=issued.not_after)
    assert seen == [issued.serial]


def test_test_authority_certificates_are_valid(authority: Authority) -> None:
    assert cause_of(authority.ca, authority.sign()) is None


def test_valid_response_data() -> None:
    result = VerifyResult(
        valid=True,
        timestamp=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        until=datetime(2024, 7, 31, 8, 30, 15, 250_000, tzinfo=UTC),
    )
    assert result.as_data() == {
        "valid": True,
        "timestamp": "2024-05-01 10:00:00.000Z",
        "until": "2024-07-31 08:30:15.250Z",
    }


def test_invalid_response_data() -> None:
    result = VerifyResult(
        valid=False, timestamp=datetime(2024, 5, 1, 10, 0, tzinfo=UTC), cause=VerifyCause.EXPIRED
    )
    assert result.as_data() == {
        "valid": False,
        "timestamp": "2024-05-01 10:00:00.000Z",
        "cause": "EXPIRED",
        "details": None,
    }


def test_cause_strings_are_astartes() -> None:
    assert [cause.value for cause in VerifyCause] == [
        "EXPIRED",
        "INVALID_ISSUER",
        "INVALID_SIGNATURE",
        "NAME_NOT_PERMITTED",
        "MISSING_BASIC_CONSTRAINT",
        "INVALID_KEY_USAGE",
        "REVOKED",
        "INVALID",
    ]


# --- INVALID ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_pem",
    [
        pytest.param(lambda pem: "", id="empty"),
        pytest.param(lambda pem: "garbage", id="garbage"),
        pytest.param(lambda pem: pem.replace("M", "!", 3), id="corrupt-base64"),
        pytest.param(lambda pem: pem[:150] + "\n-----END CERTIFICATE-----\n", id="truncated"),
        pytest.param(lambda pem: pem + pem, id="two-certificates"),
        pytest.param(lambda pem: device_csr(), id="csr"),
        pytest.param(lambda pem: pem.replace("CERTIFICATE", "X509 CRL"), id="wrong-label"),
        pytest.param(lambda pem: pem.replace("M", "é", 1), id="non-ascii"),
    ],
)
def test_undecodable_input_is_invalid(
    ca: CertificateAuthority, issued: IssuedCertificate, make_pem: Callable[[str], str]
) -> None:
    assert cause_of(ca, make_pem(issued.pem)) is VerifyCause.INVALID


def test_text_around_the_block_is_tolerated(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    assert cause_of(ca, f"subject=CN = {IDENTITY}\n{issued.pem}\n") is None


def test_malformed_extensions_are_invalid(authority: Authority) -> None:
    """Two extended key usages: the builder refuses, so the OID is patched in afterwards."""
    unused_oid = x509.ObjectIdentifier("2.5.29.99")
    client_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]).public_bytes()
    pem = authority.sign(
        extensions=[*default_extensions(), x509.UnrecognizedExtension(unused_oid, client_auth)],
        critical=False,
    )
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    patched = x509.load_der_x509_certificate(der.replace(b"\x55\x1d\x63", b"\x55\x1d\x25"))
    patched_pem = patched.public_bytes(serialization.Encoding.PEM).decode()
    assert cause_of(authority.ca, patched_pem) is VerifyCause.INVALID


def test_invalid_result_has_no_until(ca: CertificateAuthority) -> None:
    now = datetime.now(UTC)
    result = verify_device_certificate(ca, "garbage", now, never_revoked)
    assert result == VerifyResult(valid=False, timestamp=now, cause=VerifyCause.INVALID)


# --- EXPIRED ----------------------------------------------------------------------------------


def test_after_not_after_is_expired(ca: CertificateAuthority, issued: IssuedCertificate) -> None:
    assert cause_of(ca, issued.pem, issued.not_after) is None
    assert cause_of(ca, issued.pem, issued.not_after + timedelta(seconds=1)) is VerifyCause.EXPIRED


def test_before_not_before_is_expired(authority: Authority) -> None:
    now = datetime.now(UTC)
    pem = authority.sign(not_before=now + timedelta(hours=1), not_after=now + timedelta(days=1))
    assert cause_of(authority.ca, pem, now) is VerifyCause.EXPIRED


def test_expired_certificate_made_expired(authority: Authority) -> None:
    now = datetime.now(UTC)
    pem = authority.sign(not_before=now - timedelta(days=10), not_after=now - timedelta(days=1))
    assert cause_of(authority.ca, pem, now) is VerifyCause.EXPIRED


# --- INVALID_ISSUER ---------------------------------------------------------------------------


def test_certificate_of_another_ca_has_invalid_issuer(authority: Authority) -> None:
    other = Authority(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other CA")]))
    assert cause_of(authority.ca, other.sign()) is VerifyCause.INVALID_ISSUER


def test_certificate_of_a_same_named_ca_has_invalid_issuer(tmp_path: Path) -> None:
    ours = CertificateAuthority.load_or_create(tmp_path / "ours")
    theirs = CertificateAuthority.load_or_create(tmp_path / "theirs")
    assert ours.certificate.subject == theirs.certificate.subject
    pem = theirs.issue_device_certificate(device_csr(), REALM, DEVICE_ID).pem
    assert cause_of(ours, pem) is VerifyCause.INVALID_ISSUER


# --- INVALID_SIGNATURE ------------------------------------------------------------------------


def test_forged_signature_is_invalid(authority: Authority) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    pem = authority.sign(signing_key=forger)
    assert cause_of(authority.ca, pem) is VerifyCause.INVALID_SIGNATURE


def test_altered_certificate_has_invalid_signature(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    der = x509.load_pem_x509_certificate(issued.pem.encode()).public_bytes(
        serialization.Encoding.DER
    )
    altered = x509.load_der_x509_certificate(der.replace(DEVICE_ID.encode(), b"A" * 22))
    pem = altered.public_bytes(serialization.Encoding.PEM).decode()
    assert cause_of(ca, pem) is VerifyCause.INVALID_SIGNATURE


def test_expired_forgery_reports_the_signature(authority: Authority) -> None:
    now = datetime.now(UTC)
    pem = authority.sign(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        not_before=now - timedelta(days=10),
        not_after=now - timedelta(days=1),
    )
    assert cause_of(authority.ca, pem, now) is VerifyCause.INVALID_SIGNATURE


# --- MISSING_BASIC_CONSTRAINT -----------------------------------------------------------------


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(without(x509.BasicConstraints), id="absent"),
        pytest.param(replacing(x509.BasicConstraints(ca=True, path_length=None)), id="ca-true"),
    ],
)
def test_basic_constraint_must_mark_an_end_entity(
    authority: Authority, extensions: list[x509.ExtensionType]
) -> None:
    pem = authority.sign(extensions=extensions)
    assert cause_of(authority.ca, pem) is VerifyCause.MISSING_BASIC_CONSTRAINT


def test_ca_certificate_itself_is_no_device_certificate(ca: CertificateAuthority) -> None:
    assert cause_of(ca, ca.ca_cert_pem) is VerifyCause.MISSING_BASIC_CONSTRAINT


# --- INVALID_KEY_USAGE ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(without(x509.KeyUsage), id="no-key-usage"),
        pytest.param(replacing(key_usage(key_agreement=True)), id="no-digital-signature"),
        pytest.param(
            replacing(key_usage(digital_signature=True, key_cert_sign=True)), id="cert-sign"
        ),
        pytest.param(replacing(key_usage(digital_signature=True, crl_sign=True)), id="crl-sign"),
        pytest.param(without(x509.ExtendedKeyUsage), id="no-extended-key-usage"),
        pytest.param(
            replacing(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])), id="server-auth"
        ),
    ],
)
def test_key_usage_must_allow_client_authentication(
    authority: Authority, extensions: list[x509.ExtensionType]
) -> None:
    pem = authority.sign(extensions=extensions)
    assert cause_of(authority.ca, pem) is VerifyCause.INVALID_KEY_USAGE


def test_client_and_server_auth_together_is_fine(authority: Authority) -> None:
    both = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    assert cause_of(authority.ca, authority.sign(extensions=replacing(both))) is None


# --- NAME_NOT_PERMITTED -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(x509.Name([]), id="no-cn"),
        pytest.param(
            x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Devices")]), id="only-o"
        ),
        pytest.param(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]), id="no-slash"),
        pytest.param(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{REALM}/{DEVICE_ID}AAAA")]),
            id="extended-id",
        ),
        pytest.param(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, IDENTITY),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"other/{DEVICE_ID}"),
                ]
            ),
            id="two-cns",
        ),
    ],
)
def test_subject_must_be_a_device_identity(authority: Authority, subject: x509.Name) -> None:
    pem = authority.sign(subject=subject)
    assert cause_of(authority.ca, pem) is VerifyCause.NAME_NOT_PERMITTED


# --- REVOKED ----------------------------------------------------------------------------------


def test_revoked_serial_is_revoked(ca: CertificateAuthority, issued: IssuedCertificate) -> None:
    revoked = {issued.serial}
    assert cause_of(ca, issued.pem, is_revoked=revoked.__contains__) is VerifyCause.REVOKED
    assert cause_of(ca, issued.pem, is_revoked={issued.serial + 1}.__contains__) is None


def test_revocation_is_only_looked_up_for_otherwise_valid_certificates(
    ca: CertificateAuthority, issued: IssuedCertificate
) -> None:
    def is_revoked(serial: int) -> bool:
        raise AssertionError("revocation looked up for an expired certificate")

    later = issued.not_after + timedelta(days=1)
    assert cause_of(ca, issued.pem, later, is_revoked) is VerifyCause.EXPIRED


def test_naive_now_is_refused(ca: CertificateAuthority, issued: IssuedCertificate) -> None:
    with pytest.raises(ValueError, match="timezone"):
        verify_device_certificate(ca, issued.pem, datetime.now(), never_revoked)


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "2024-05-01 10:00:00.000Z"),
        (datetime(2024, 5, 1, 10, 0, 0, 999_999, tzinfo=UTC), "2024-05-01 10:00:00.999Z"),
        (datetime(2024, 12, 31, 23, 59, 59, 7_000, tzinfo=UTC), "2024-12-31 23:59:59.007Z"),
        (
            datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01 10:00:00.000Z",
        ),
    ],
)
def test_format_timestamp(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


# --- identity ---------------------------------------------------------------------------------


def test_common_name_of_issued_certificate(issued: IssuedCertificate) -> None:
    assert common_name_of(x509.load_pem_x509_certificate(issued.pem.encode())) == IDENTITY


def test_common_name_of_requires_exactly_one(authority: Authority) -> None:
    pem = authority.sign(subject=x509.Name([]))
    with pytest.raises(ValueError, match="exactly one"):
        common_name_of(x509.load_pem_x509_certificate(pem.encode()))


def test_split_identity() -> None:
    assert split_identity(IDENTITY) == (REALM, DEVICE_ID)


@pytest.mark.parametrize(
    "common_name",
    [
        "",
        REALM,
        f"{REALM}/",
        f"/{DEVICE_ID}",
        f"Test/{DEVICE_ID}",
        f"1test/{DEVICE_ID}",
        f"te_st/{DEVICE_ID}",
        f"{'a' * 49}/{DEVICE_ID}",
        f"{REALM}/{DEVICE_ID}/extra",
        f"{REALM}/{DEVICE_ID[:-1]}B",
        f"{REALM}/{DEVICE_ID}AAAA",
        f"{REALM}/{DEVICE_ID[:-1]}",
        f"{REALM}/{DEVICE_ID[:-1]}=",
    ],
)
def test_split_identity_rejects(common_name: str) -> None:
    with pytest.raises(ValueError):
        split_identity(common_name)


@given(
    raw=st.binary(min_size=16, max_size=16),
    realm=st.from_regex(r"[a-z][a-z0-9]{0,47}", fullmatch=True),
)
def test_split_identity_accepts_every_canonical_id(raw: bytes, realm: str) -> None:
    device_id = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert split_identity(f"{realm}/{device_id}") == (realm, device_id)
