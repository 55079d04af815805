"""Pairing cryptography: the device CA, credentials secrets and certificate verification."""

from astraea.pairing.ca import (
    DEVICE_CERT_VALIDITY,
    CAStoreError,
    CertificateAuthority,
    InvalidCSR,
    IssuedCertificate,
)
from astraea.pairing.cert_verify import (
    VerifyCause,
    VerifyResult,
    common_name_of,
    format_timestamp,
    split_identity,
    verify_device_certificate,
)
from astraea.pairing.secrets import generate_credentials_secret, hash_secret, verify_secret

__all__ = [
    "DEVICE_CERT_VALIDITY",
    "CAStoreError",
    "CertificateAuthority",
    "InvalidCSR",
    "IssuedCertificate",
    "VerifyCause",
    "VerifyResult",
    "common_name_of",
    "format_timestamp",
    "generate_credentials_secret",
    "hash_secret",
    "split_identity",
    "verify_device_certificate",
    "verify_secret",
]
