"""The SQLite `Storage`: one database file, migrated to the current schema when opened."""

from __future__ import annotations

from pathlib import Path

from astraea.storage.base import InterfaceRepository, RealmRepository
from astraea.storage.sqlite.connection import Database, connect
from astraea.storage.sqlite.interfaces import SqliteInterfaceRepository
from astraea.storage.sqlite.migrator import migrate, shipped_migrations
from astraea.storage.sqlite.realms import SqliteRealmRepository


class SqliteStorage:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.realms: RealmRepository = SqliteRealmRepository(database)
        self.interfaces: InterfaceRepository = SqliteInterfaceRepository(database)

    async def close(self) -> None:
        await self._database.close()


async def open_sqlite_storage(path: Path) -> SqliteStorage:
    """Opens or creates the database at `path` and applies the missing migrations."""
    database = await connect(path)
    try:
        await migrate(database, shipped_migrations())
    except BaseException:
        await database.close()
        raise
    return SqliteStorage(database)
