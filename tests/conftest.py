"""Shared fixtures: signing keys, a running platform on a temporary data folder, HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from astraea.config import Settings
from astraea.jwt_tokens import mint_token
from astraea.platform import Platform
from astraea.tls_material import generate_keypair


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str

    def token(self, *services: str, claims: list[str] | None = None, expiry: int = 300) -> str:
        return mint_token(self.private_pem, list(services), claims=claims, expiry_seconds=expiry)

    def headers(self, *services: str, claims: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*services, claims=claims)}"}


def _keypair(algorithm: str) -> KeyPair:
    private_pem, public_pem = generate_keypair(algorithm)  # type: ignore[arg-type]
    return KeyPair(private_pem, public_pem)


@pytest.fixture(scope="session")
def housekeeping_keys() -> KeyPair:
    return _keypair("rsa")


@pytest.fixture(scope="session")
def realm_keys() -> KeyPair:
    return _keypair("rsa")


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return _keypair("ec")


def platform_settings(data_dir: Path, housekeeping_keys: KeyPair, **overrides: object) -> Settings:
    key_file = data_dir.parent / f"{data_dir.name}-housekeeping_public.pem"
    key_file.write_text(housekeeping_keys.public_pem)
    settings = Settings(
        data_dir=data_dir,
        http_port=0,
        mqtt_port=0,
        housekeeping_public_key=key_file,
    )
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


@pytest.fixture
async def platform(tmp_path: Path, housekeeping_keys: KeyPair) -> AsyncIterator[Platform]:
    running = Platform(platform_settings(tmp_path / "data", housekeeping_keys))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def http(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.http_port}") as client:
        yield client


@pytest.fixture
async def realm(http: httpx.AsyncClient, housekeeping_keys: KeyPair, realm_keys: KeyPair) -> str:
    """A realm named `test` whose tokens are signed by `realm_keys`."""
    response = await http.post(
        "/housekeeping/v1/realms",
        json={"data": {"realm_name": "test", "jwt_public_key_pem": realm_keys.public_pem}},
        headers=housekeeping_keys.headers("housekeeping"),
    )
    assert response.status_code == 201, response.text
    return "test"
