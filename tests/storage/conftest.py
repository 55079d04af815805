"""Fixtures for storage tests.

The contract suite (`contract/`) asks for `storage`, which runs each test once per backend of
`storage_support.BACKENDS` (ids `sqlite`, `postgres`) on a database of its own: a fresh SQLite
file, or a fresh PostgreSQL schema dropped afterwards. `storage_url` names that database (to
open it again), and `raw_tables` reaches its tables directly. Backend-specific tests
(`test_sqlite_*`, `test_postgres_*`) use `db_path` / `sqlite_storage` and `postgres_schema_url`
/ `postgres_admin`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from storage_support import BACKENDS, RawTables
from tests.services import postgres_schema, postgres_url

from astraea.core.interface import (
    Aggregation,
    Interface,
    InterfaceType,
    Mapping,
    Ownership,
    ValueType,
)
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage


@pytest.fixture(params=sorted(BACKENDS))
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def storage_url(backend_name: str, tmp_path: Path) -> AsyncIterator[str]:
    async with BACKENDS[backend_name].provision(tmp_path) as url:
        yield url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    opened = await open_storage(storage_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def realm(storage: Storage) -> str:
    await storage.realms.create(Realm(name="test", jwt_public_key_pem="test-pem"))
    return "test"


@pytest.fixture
async def raw_tables(
    backend_name: str, storage_url: str, storage: Storage
) -> AsyncIterator[RawTables]:
    """A second connection to the storage's database (already migrated by `storage`)."""
    raw = await BACKENDS[backend_name].raw_tables(storage_url)
    try:
        yield raw
    finally:
        await raw.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite database file, for the SQLite-specific tests."""
    return tmp_path / "astraea.db"


@pytest.fixture
async def sqlite_storage(db_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite://{db_path}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def postgres_schema_url() -> AsyncIterator[str]:
    """A storage URL on a fresh PostgreSQL schema that nothing has created yet."""
    async with postgres_schema() as url:
        yield url


@pytest.fixture
async def postgres_admin() -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database outside any test schema."""
    connection = await asyncpg.connect(postgres_url())
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def make_interface() -> Callable[..., Interface]:
    def build(
        name: str = "org.example.Sensors",
        major: int = 0,
        minor: int = 1,
        *,
        description: str | None = None,
        aggregation: Aggregation = Aggregation.INDIVIDUAL,
    ) -> Interface:
        return Interface(
            name=name,
            major=major,
            minor=minor,
            type=InterfaceType.DATASTREAM,
            ownership=Ownership.DEVICE,
            aggregation=aggregation,
            mappings=(
                Mapping(endpoint="/%{sensor}/value", type=ValueType.DOUBLE),
                Mapping(endpoint="/%{sensor}/name", type=ValueType.STRING),
            ),
            description=description,
        )

    return build
