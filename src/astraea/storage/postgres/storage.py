"""The PostgreSQL `Storage`: one pool on one database (and schema), migrated when opened."""

from __future__ import annotations

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
from astraea.storage.postgres.connection import Database, connect
from astraea.storage.postgres.delivery_queue import PostgresDeliveryQueueRepository
from astraea.storage.postgres.devices import PostgresDeviceRepository
from astraea.storage.postgres.interfaces import PostgresInterfaceRepository
from astraea.storage.postgres.migrator import migrate, shipped_migrations
from astraea.storage.postgres.nodes import PostgresNodeRepository
from astraea.storage.postgres.policies import PostgresPolicyRepository
from astraea.storage.postgres.realms import PostgresRealmRepository
from astraea.storage.postgres.sessions import PostgresSessionRepository
from astraea.storage.postgres.triggers import PostgresTriggerRepository
from astraea.storage.postgres.url import PostgresTarget
from astraea.storage.postgres.values import PostgresValueRepository


class PostgresStorage:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.delivery_queue: DeliveryQueueRepository = PostgresDeliveryQueueRepository(database)
        self.realms: RealmRepository = PostgresRealmRepository(database)
        self.interfaces: InterfaceRepository = PostgresInterfaceRepository(database)
        self.triggers: TriggerRepository = PostgresTriggerRepository(database)
        self.policies: PolicyRepository = PostgresPolicyRepository(database)
        self.devices: DeviceRepository = PostgresDeviceRepository(database)
        self.values: ValueRepository = PostgresValueRepository(database)
        self.nodes: NodeRepository = PostgresNodeRepository(database)
        self.sessions: SessionRepository = PostgresSessionRepository(database)

    async def close(self) -> None:
        await self._database.close()


async def open_postgres_storage(target: PostgresTarget) -> PostgresStorage:
    """Connects and applies the missing migrations (creating the target's schema if needed)."""
    database = await connect(target)
    try:
        await migrate(database, shipped_migrations())
    except BaseException:
        await database.close()
        raise
    return PostgresStorage(database)
