"""The SQLite `Storage`: one database file, migrated to the current schema when opened."""

from __future__ import annotations

from pathlib import Path

from astraea.storage.base import (
    DeliveryQueueRepository,
    DeviceRepository,
    InterfaceRepository,
    NodeRepository,
    PolicyRepository,
    RealmRepository,
    SessionRepository,
    TriggerRepository,
    ValueRepository,
)
from astraea.storage.sqlite.connection import Database, connect
from astraea.storage.sqlite.delivery_queue import SqliteDeliveryQueueRepository
from astraea.storage.sqlite.devices import SqliteDeviceRepository
from astraea.storage.sqlite.interfaces import SqliteInterfaceRepository
from astraea.storage.sqlite.migrator import migrate, shipped_migrations
from astraea.storage.sqlite.nodes import SqliteNodeRepository
from astraea.storage.sqlite.policies import SqlitePolicyRepository
from astraea.storage.sqlite.realms import SqliteRealmRepository
from astraea.storage.sqlite.sessions import SqliteSessionRepository
from astraea.storage.sqlite.triggers import SqliteTriggerRepository
from astraea.storage.sqlite.values import SqliteValueRepository


class SqliteStorage:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.delivery_queue: DeliveryQueueRepository = SqliteDeliveryQueueRepository(database)
        self.realms: RealmRepository = SqliteRealmRepository(database)
        self.interfaces: InterfaceRepository = SqliteInterfaceRepository(database)
        self.triggers: TriggerRepository = SqliteTriggerRepository(database)
        self.policies: PolicyRepository = SqlitePolicyRepository(database)
        self.devices: DeviceRepository = SqliteDeviceRepository(database)
        self.values: ValueRepository = SqliteValueRepository(database)
        self.nodes: NodeRepository = SqliteNodeRepository(database)
        self.sessions: SessionRepository = SqliteSessionRepository(database)

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
