"""Credentials secrets: format, hashing round trip, and refusal of anything else."""

from __future__ import annotations

import base64

import bcrypt
import pytest

from astraea.pairing.secrets import (
    BCRYPT_ROUNDS,
    generate_credentials_secret,
    hash_secret,
    verify_secret,
)


def test_secret_is_32_random_bytes_in_standard_base64() -> None:
    secrets = {generate_credentials_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert len(secret) == 44
        assert len(base64.b64decode(secret, validate=True)) == 32


def test_hash_round_trip() -> None:
    secret = generate_credentials_secret()
    hashed = hash_secret(secret)
    assert hashed.startswith(f"$2b${BCRYPT_ROUNDS:02d}$")
    assert secret not in hashed
    assert verify_secret(secret, hashed)


def test_hashes_are_salted() -> None:
    secret = generate_credentials_secret()
    assert hash_secret(secret) != hash_secret(secret)


def test_wrong_secret_is_rejected() -> None:
    hashed = hash_secret(generate_credentials_secret())
    assert not verify_secret(generate_credentials_secret(), hashed)
    assert not verify_secret("", hashed)


def test_secret_differing_in_one_character_is_rejected() -> None:
    secret = generate_credentials_secret()
    hashed = hash_secret(secret)
    altered = ("B" if secret[0] == "A" else "A") + secret[1:]
    assert not verify_secret(altered, hashed)


@pytest.mark.parametrize("rounds", [4, 12])
def test_hashes_of_other_costs_verify(rounds: int) -> None:
    """Hashes carried over from Astarte (cost 12) or made at another cost still verify."""
    secret = generate_credentials_secret()
    hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    assert verify_secret(secret, hashed)


def test_2a_prefix_hashes_verify() -> None:
    secret = generate_credentials_secret()
    hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()
    assert hashed.startswith("$2a$")
    assert verify_secret(secret, hashed)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "garbage",
        "$2b$10$",
        "$2b$10$tooshort",
        "$2b$99$" + "a" * 53,
        "é" * 60,
        "$2b$10$" + "\0" * 53,
    ],
)
def test_malformed_hash_is_rejected_without_raising(hashed: str) -> None:
    assert not verify_secret(generate_credentials_secret(), hashed)


@pytest.mark.parametrize("secret", ["x" * 100, "\ud800", "with\0nul", "é" * 40])
def test_odd_secrets_are_rejected_without_raising(secret: str) -> None:
    assert not verify_secret(secret, hash_secret(generate_credentials_secret()))


def test_overlong_secret_cannot_be_hashed() -> None:
    with pytest.raises(ValueError):
        hash_secret("x" * 73)
