"""JWT verification and claim checks, as Astarte's APIs do them (see reference auth.md)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Request

from astraea.api.errors import ApiError
from astraea.core.auth_claims import auth_path, claim_allows

# Astarte's list: asymmetric only, so a public key can never double as an HMAC secret.
_RSA_ALGORITHMS = ["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"]
_EC_ALGORITHMS = ["ES256", "ES384", "ES512"]
_BEARER = re.compile(r"^bearer:?\s+(\S+)\s*$", re.IGNORECASE)
# Seconds of clock drift tolerated on exp/nbf, between the token issuer and us.
_LEEWAY = 5

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class InvalidToken(Exception):
    pass


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <t>` header; `Bearer:` is accepted too."""
    if header is None:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


@lru_cache(maxsize=256)
def parse_public_key(pem: str) -> PublicKey | None:
    """The key if `pem` is a PEM SubjectPublicKeyInfo usable for JWT (RSA or EC), else None."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    return key if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None


def verify_token(token: str, public_key_pem: str) -> dict[str, Any]:
    key = parse_public_key(public_key_pem)
    if key is None:
        raise InvalidToken("the verification key is unusable")
    algorithms = _RSA_ALGORITHMS if isinstance(key, rsa.RSAPublicKey) else _EC_ALGORITHMS
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            options={"verify_aud": False, "require": []},
            leeway=_LEEWAY,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    return claims


def raw_segments(request: Request) -> list[str]:
    """URL path segments as sent (not percent-decoded), the form claim regexes see."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    return [s for s in path.split("/") if s]


def authorize(
    request: Request,
    *,
    claim: str,
    public_key_pem: str,
    skip_segments: int,
) -> None:
    """Raises ApiError unless the bearer token is valid and its `claim` allows this request.

    `skip_segments` leading path segments (API prefix, `v1`, realm) are not part of the path
    the claim regexes see.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "Missing authorization token")
    try:
        claims = verify_token(token, public_key_pem)
    except InvalidToken:
        raise ApiError(401, "Invalid JWT token") from None
    segments = raw_segments(request)
    if not claim_allows(claims.get(claim), request.method, auth_path(segments[skip_segments:])):
        service_path = "/" + "/".join(segments[1:])
        raise ApiError(
            403,
            f"Unauthorized access to {request.method} {service_path}. "
            "Please verify your permissions",
        )
