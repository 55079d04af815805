"""Credentials secrets: the shared secret a device presents to the Pairing device API.

The secret is handed out once at registration and only its bcrypt hash is stored, as in
Astarte, so hashes migrated from an Astarte database verify unchanged.
"""

from __future__ import annotations

import base64
import secrets

import bcrypt

__all__ = ["BCRYPT_ROUNDS", "generate_credentials_secret", "hash_secret", "verify_secret"]

# Cost 10 (~60 ms per check) instead of bcrypt's default 12 (~250 ms). The secret is 256
# random bits, so no cost factor changes how guessable it is; bcrypt only has to make a leaked
# hash useless, which any cost does. What the cost does change is CPU per device request:
# every info/credentials/verify call checks the secret, and a fleet reconnecting after an
# outage must not turn Pairing into its own denial of service. Hashes made at other costs
# (e.g. Astarte's 12) still verify, as the cost is stored in the hash.
BCRYPT_ROUNDS = 10

_SECRET_BYTES = 32


def generate_credentials_secret() -> str:
    """Return 32 random bytes in standard base64 (44 characters), the format SDKs expect."""
    return base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def hash_secret(secret: str) -> str:
    """Return the bcrypt hash to store; raise ValueError past bcrypt's 72-byte input limit."""
    return bcrypt.hashpw(secret.encode("utf-8"), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode(
        "ascii"
    )


def verify_secret(secret: str, hashed: str) -> bool:
    """Check `secret` against a stored hash in constant time; False for any malformed input.

    Blocks for the hash's cost (tens of ms): async callers should run it in a thread.
    """
    try:
        return bcrypt.checkpw(secret.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False
