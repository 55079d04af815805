"""Verification of device client certificates for Pairing's `credentials/verify` endpoint.

Devices ask Pairing whether their stored certificate is still good and request a new one when
it is not, so the answer must name the reason with Astarte's cause strings. Device
certificates are issued directly by the instance CA, so the path is a single link and is
checked here by hand: that gives each failure its precise cause, which a generic path
validator reports only as free text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from astraea.core.device_id import canonical_device_id
from astraea.tls_material import single_pem_block

if TYPE_CHECKING:
    from astraea.pairing.ca import CertificateAuthority

__all__ = [
    "VerifyCause",
    "VerifyResult",
    "common_name_of",
    "format_timestamp",
    "split_identity",
    "verify_device_certificate",
]

_REALM = re.compile(r"[a-z][a-z0-9]{0,47}")


class VerifyCause(enum.StrEnum):
    EXPIRED = "EXPIRED"
    INVALID_ISSUER = "INVALID_ISSUER"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    NAME_NOT_PERMITTED = "NAME_NOT_PERMITTED"
    MISSING_BASIC_CONSTRAINT = "MISSING_BASIC_CONSTRAINT"
    INVALID_KEY_USAGE = "INVALID_KEY_USAGE"
    REVOKED = "REVOKED"
    INVALID = "INVALID"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    valid: bool
    timestamp: datetime
    until: datetime | None = None
    cause: VerifyCause | None = None

    def as_data(self) -> dict[str, object]:
        """Render the `data` object of the verify response, whose keys differ by outcome."""
        if self.valid and self.until is not None:
            return {
                "valid": True,
                "timestamp": format_timestamp(self.timestamp),
                "until": format_timestamp(self.until),
            }
        return {
            "valid": False,
            "timestamp": format_timestamp(self.timestamp),
            "cause": str(self.cause),
            "details": None,
        }


def verify_device_certificate(
    ca: CertificateAuthority,
    cert_pem: str,
    now: datetime,
    is_revoked: Callable[[int], bool],
) -> VerifyResult:
    """Check that `cert_pem` is a current, unrevoked device certificate issued by `ca`.

    Content is judged only after the signature proves the CA wrote it, and `is_revoked`
    (a storage lookup by serial) is consulted last, only for otherwise valid certificates.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        certificate = x509.load_pem_x509_certificate(single_pem_block(cert_pem, "CERTIFICATE"))
        # Extensions are parsed lazily, so a malformed one surfaces here as well.
        cause = _first_failure(ca.certificate, certificate, now)
    except (ValueError, x509.DuplicateExtension):
        return VerifyResult(valid=False, timestamp=now, cause=VerifyCause.INVALID)
    if cause is None and is_revoked(certificate.serial_number):
        cause = VerifyCause.REVOKED
    if cause is not None:
        return VerifyResult(valid=False, timestamp=now, cause=cause)
    return VerifyResult(valid=True, timestamp=now, until=certificate.not_valid_after_utc)


def format_timestamp(moment: datetime) -> str:
    """Format as Astarte does in verify responses: UTC, space separator, milliseconds, `Z`."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def common_name_of(certificate: x509.Certificate) -> str:
    """Return the subject CN, which is the whole device identity; ValueError unless exactly one."""
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attributes) != 1 or not isinstance(attributes[0].value, str):
        raise ValueError("certificate subject must have exactly one common name")
    return attributes[0].value


def split_identity(common_name: str) -> tuple[str, str]:
    """Split `<realm>/<device_id>` into its parts; ValueError unless both are well formed.

    Only the canonical 22-character id is accepted: the CA never writes another form, and
    accepting extended ids here would let two spellings name one device.
    """
    realm, separator, device_id = common_name.partition("/")
    if not separator or not _REALM.fullmatch(realm):
        raise ValueError(f"not a <realm>/<device_id> identity: {common_name!r}")
    if canonical_device_id(device_id) != device_id:
        raise ValueError(f"not a canonical device id: {device_id!r}")
    return realm, device_id


def _first_failure(
    ca: x509.Certificate, certificate: x509.Certificate, now: datetime
) -> VerifyCause | None:
    return (
        _issuer_failure(ca, certificate)
        or _signature_failure(ca, certificate)
        or _validity_failure(certificate, now)
        or _extension_failure(certificate.extensions)
        or _name_failure(certificate)
    )


def _issuer_failure(ca: x509.Certificate, certificate: x509.Certificate) -> VerifyCause | None:
    if certificate.issuer != ca.subject:
        return VerifyCause.INVALID_ISSUER
    # Same name, different key: a CA regenerated (or another instance's) with our default name.
    try:
        authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        subject_key = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    if authority.value.key_identifier not in (None, subject_key.value.digest):
        return VerifyCause.INVALID_ISSUER
    return None


def _signature_failure(ca: x509.Certificate, certificate: x509.Certificate) -> VerifyCause | None:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return VerifyCause.INVALID_SIGNATURE
    return None


def _validity_failure(certificate: x509.Certificate, now: datetime) -> VerifyCause | None:
    if certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return None
    return VerifyCause.EXPIRED


def _extension_failure(extensions: x509.Extensions) -> VerifyCause | None:
    # A certificate able to sign others is not a device certificate, whatever else it holds.
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return VerifyCause.MISSING_BASIC_CONSTRAINT
    except x509.ExtensionNotFound:
        return VerifyCause.MISSING_BASIC_CONSTRAINT
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        purposes = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return VerifyCause.INVALID_KEY_USAGE
    if (
        not usage.digital_signature
        or usage.key_cert_sign
        or usage.crl_sign
        or ExtendedKeyUsageOID.CLIENT_AUTH not in purposes
    ):
        return VerifyCause.INVALID_KEY_USAGE
    return None


def _name_failure(certificate: x509.Certificate) -> VerifyCause | None:
    try:
        split_identity(common_name_of(certificate))
    except ValueError:
        return VerifyCause.NAME_NOT_PERMITTED
    return None
