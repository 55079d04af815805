"""Fixtures for storage tests: a real SQLite file per test, opened through `open_storage`."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "astraea.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite://{db_path}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def realm(storage: Storage) -> str:
    await storage.realms.create(Realm(name="test", jwt_public_key_pem="test-pem"))
    return "test"


@pytest.fixture
def raw_sql(db_path: Path, storage: Storage) -> Iterator[sqlite3.Connection]:
    """A second, synchronous connection to the same file, for rows no repository writes yet."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    try:
        yield connection
    finally:
        connection.close()


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
