"""PostgreSQL migrations: versions, refusal of newer schemas, all-or-nothing, and the advisory
lock that lets several processes open one fresh database at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from astraea.storage import open_storage
from astraea.storage.base import Realm, SchemaTooNew
from astraea.storage.postgres import parse_postgres_url
from astraea.storage.postgres.connection import Database, connect
from astraea.storage.postgres.migrator import (
    MIGRATION_LOCK,
    Migration,
    migrate,
    shipped_migrations,
)


@pytest.fixture
def schema(postgres_schema_url: str) -> str:
    name = parse_postgres_url(postgres_schema_url).schema
    assert name is not None
    return name


@pytest.fixture
async def database(postgres_schema_url: str) -> AsyncIterator[Database]:
    """A pool on the fresh schema, which does not exist yet."""
    opened = await connect(parse_postgres_url(postgres_schema_url))
    try:
        yield opened
    finally:
        await opened.close()


async def _applied(admin: asyncpg.Connection, schema: str) -> list[tuple[int, str]]:
    rows = await admin.fetch(f'SELECT version, name FROM "{schema}".schema_version ORDER BY 1')
    return [(row["version"], row["name"]) for row in rows]


async def _schema_exists(admin: asyncpg.Connection, schema: str) -> bool:
    found: bool = await admin.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
    )
    return found


def test_shipped_migrations_are_numbered_from_one() -> None:
    migrations = shipped_migrations()

    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert "CREATE TABLE realms" in migrations[0].script


async def test_open_creates_the_schema_and_applies_every_shipped_migration(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    assert not await _schema_exists(postgres_admin, schema)

    storage = await open_storage(postgres_schema_url)
    await storage.close()

    assert await _applied(postgres_admin, schema) == [
        (m.version, m.name) for m in shipped_migrations()
    ]


async def test_reopening_migrates_nothing_and_keeps_data(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    storage = await open_storage(postgres_schema_url)
    await storage.realms.create(Realm(name="persisted", jwt_public_key_pem="pem"))
    await storage.close()
    applied = await _applied(postgres_admin, schema)

    for _ in range(2):
        storage = await open_storage(postgres_schema_url)
        assert await storage.realms.list_names() == ["persisted"]
        await storage.close()
    assert await _applied(postgres_admin, schema) == applied


async def test_a_newer_schema_is_refused_and_left_untouched(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    storage = await open_storage(postgres_schema_url)
    await storage.close()
    await postgres_admin.execute(
        f"INSERT INTO \"{schema}\".schema_version VALUES (999, 'from_the_future', 0)"
    )
    applied = await _applied(postgres_admin, schema)

    with pytest.raises(SchemaTooNew, match="version 999"):
        await open_storage(postgres_schema_url)
    assert await _applied(postgres_admin, schema) == applied


async def test_pending_migrations_apply_in_order(
    database: Database, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    first = Migration(1, "first", "CREATE TABLE a (x integer);")
    second = Migration(2, "second", "INSERT INTO a VALUES (1); ALTER TABLE a ADD COLUMN y text;")

    assert await migrate(database, [first]) == 1
    assert await migrate(database, [first, second]) == 2

    assert await _applied(postgres_admin, schema) == [(1, "first"), (2, "second")]
    rows = await database.fetch("SELECT x, y FROM a")
    assert [tuple(row) for row in rows] == [(1, None)]


async def test_a_failing_migration_applies_nothing(
    database: Database, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x integer);")
    broken = Migration(2, "broken", "CREATE TABLE b (x integer); INSERT INTO missing VALUES (1);")

    with pytest.raises(asyncpg.UndefinedTableError, match="missing"):
        await migrate(database, [good, broken])

    assert not await _schema_exists(postgres_admin, schema)  # not even the schema


async def test_concurrent_opens_of_a_fresh_schema_all_succeed_and_migrate_once(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    storages = await asyncio.gather(*(open_storage(postgres_schema_url) for _ in range(5)))
    try:
        await storages[0].realms.create(Realm(name="shared", jwt_public_key_pem="pem"))
        for storage in storages:
            assert await storage.realms.list_names() == ["shared"]
    finally:
        for storage in storages:
            await storage.close()

    assert await _applied(postgres_admin, schema) == [
        (m.version, m.name) for m in shipped_migrations()
    ]


async def test_opening_waits_for_the_migration_lock(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection, schema: str
) -> None:
    await postgres_admin.execute(
        "SELECT pg_advisory_lock($1, hashtext($2))", MIGRATION_LOCK, schema
    )
    try:
        opening = asyncio.create_task(open_storage(postgres_schema_url))
        await asyncio.sleep(0.3)
        assert not opening.done()
        assert not await _schema_exists(postgres_admin, schema)
    finally:
        await postgres_admin.execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))", MIGRATION_LOCK, schema
        )
    storage = await asyncio.wait_for(opening, 10)
    await storage.close()
    assert await _schema_exists(postgres_admin, schema)
