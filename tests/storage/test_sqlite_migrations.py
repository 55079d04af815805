from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from astraea.storage import open_storage
from astraea.storage.base import Realm, SchemaTooNew
from astraea.storage.sqlite.connection import Database, connect
from astraea.storage.sqlite.migrator import (
    Migration,
    migrate,
    shipped_migrations,
    split_statements,
)


@pytest.fixture
async def database(db_path: Path) -> AsyncIterator[Database]:
    opened = await connect(db_path)
    try:
        yield opened
    finally:
        await opened.close()


def _applied(db_path: Path) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(db_path)) as connection:
        return connection.execute("SELECT version, name FROM schema_version").fetchall()


def _tables(db_path: Path) -> set[str]:
    with closing(sqlite3.connect(db_path)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
        return {name for (name,) in rows}


def test_shipped_migrations_are_numbered_from_one() -> None:
    migrations = shipped_migrations()

    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert "CREATE TABLE realms" in migrations[0].script


async def test_open_applies_every_shipped_migration(db_path: Path) -> None:
    storage = await open_storage(f"sqlite://{db_path}")
    await storage.close()

    assert _applied(db_path) == [(m.version, m.name) for m in shipped_migrations()]


async def test_reopening_migrates_nothing_and_keeps_data(db_path: Path) -> None:
    storage = await open_storage(f"sqlite://{db_path}")
    await storage.realms.create(Realm(name="persisted", jwt_public_key_pem="pem"))
    await storage.close()
    applied = _applied(db_path)

    for _ in range(2):
        storage = await open_storage(f"sqlite://{db_path}")
        assert await storage.realms.list_names() == ["persisted"]
        await storage.close()
    assert _applied(db_path) == applied


async def test_a_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    storage = await open_storage(f"sqlite://{db_path}")
    await storage.close()
    with closing(sqlite3.connect(db_path)) as connection, connection:
        connection.execute("INSERT INTO schema_version VALUES (999, 'from_the_future', 0)")
    applied = _applied(db_path)

    with pytest.raises(SchemaTooNew, match="version 999"):
        await open_storage(f"sqlite://{db_path}")
    assert _applied(db_path) == applied


async def test_pending_migrations_apply_in_order(database: Database, db_path: Path) -> None:
    first = Migration(1, "first", "CREATE TABLE a (x INTEGER);")
    second = Migration(2, "second", "INSERT INTO a VALUES (1); ALTER TABLE a ADD COLUMN y TEXT;")

    assert await migrate(database, [first]) == 1
    assert await migrate(database, [first, second]) == 2

    assert _applied(db_path) == [(1, "first"), (2, "second")]
    rows = await database.fetch_all("SELECT x, y FROM a")
    assert [tuple(row) for row in rows] == [(1, None)]


async def test_a_failing_migration_applies_nothing(database: Database, db_path: Path) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    broken = Migration(2, "broken", "CREATE TABLE b (x INTEGER); INSERT INTO missing VALUES (1);")

    with pytest.raises(sqlite3.OperationalError, match="missing"):
        await migrate(database, [good, broken])

    assert _tables(db_path) == set()  # not even schema_version


async def test_connection_settings(database: Database) -> None:
    async def pragma(name: str) -> object:
        row = await database.fetch_one(f"PRAGMA {name}")
        assert row is not None
        return row[0]

    assert await pragma("journal_mode") == "wal"
    assert await pragma("synchronous") == 2  # FULL
    assert await pragma("foreign_keys") == 1
    assert await pragma("busy_timeout") == 5000


def test_split_statements_respects_comments_strings_and_trigger_bodies() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 'c;d';
    END;
    /* trailing; comment */
    """

    statements = split_statements(script)

    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "/* trailing; comment */"
