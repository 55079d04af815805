"""Minting Astarte-style API tokens from a realm or housekeeping private key.

Tokens carry only what Astarte checks (auth.md §1): one authorization claim per API,
`iat`, and `exp` unless the token should never expire. The signing algorithm follows
from the key, so callers never have to keep a key and an algorithm name in sync.
"""

from __future__ import annotations

import time
from typing import Final

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

API_CLAIMS: Final[dict[str, str]] = {
    "housekeeping": "a_ha",
    "realm-management": "a_rma",
    "pairing": "a_pa",
    "appengine": "a_aea",
    "channels": "a_ch",
}

DEFAULT_CLAIMS: Final[tuple[str, ...]] = (".*::.*",)
DEFAULT_CHANNELS_CLAIMS: Final[tuple[str, ...]] = ("JOIN::.*", "WATCH::.*")

_EC_ALGORITHMS: Final[dict[str, str]] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}


class TokenError(ValueError):
    """The token cannot be minted: unusable key, unknown service or bad expiry."""


def mint_token(
    private_key_pem: str,
    services: list[str],
    *,
    expiry_seconds: int | None = 300,
    claims: list[str] | None = None,
    now: float | None = None,
) -> str:
    """Sign a token granting `claims` (or full access) on each of `services`.

    `expiry_seconds` of None or 0 omits `exp`; `now` (epoch seconds) pins `iat` for tests.
    """
    if not services:
        raise TokenError("at least one service is required")
    unknown = sorted(set(services) - API_CLAIMS.keys())
    if unknown:
        raise TokenError(
            f"unknown service(s) {', '.join(unknown)}; expected one of {', '.join(API_CLAIMS)}"
        )
    if expiry_seconds is not None and expiry_seconds < 0:
        raise TokenError(f"expiry must be a non-negative number of seconds, got {expiry_seconds}")
    key, algorithm = _load_signing_key(private_key_pem)
    issued_at = int(time.time() if now is None else now)
    payload: dict[str, object] = {
        API_CLAIMS[service]: list(claims if claims is not None else _default_claims(service))
        for service in services
    }
    payload["iat"] = issued_at
    if expiry_seconds:
        payload["exp"] = issued_at + expiry_seconds
    return jwt.encode(payload, key, algorithm=algorithm)


def _default_claims(service: str) -> tuple[str, ...]:
    return DEFAULT_CHANNELS_CLAIMS if service == "channels" else DEFAULT_CLAIMS


def _load_signing_key(
    private_key_pem: str,
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, str]:
    try:
        key = load_pem_private_key(private_key_pem.encode(), password=None)
    except TypeError as exc:
        raise TokenError("the private key is password-protected") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TokenError("not a PEM-encoded private key") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise TokenError(f"unsupported EC curve {key.curve.name}; use P-256, P-384 or P-521")
        return key, algorithm
    raise TokenError("unsupported key type; use an RSA or EC (P-256/384/521) key")
