"""What only SQLite needs saying: its STRICT tables keep column types (PostgreSQL's are typed
anyway). The schema rules both backends share are in contract/test_schema_rules.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from astraea.core.device_id import random_device_id
from astraea.storage.base import Realm, Storage


async def test_strict_tables_refuse_values_of_the_wrong_type(
    sqlite_storage: Storage, db_path: Path
) -> None:
    await sqlite_storage.realms.create(Realm(name="kept", jwt_public_key_pem="pem"))
    await sqlite_storage.devices.register("kept", random_device_id(), "h", {}, datetime.now(UTC))

    connection = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="cannot store TEXT value in INTEGER"):
            connection.execute(
                "UPDATE devices SET last_connection = '2024-01-01T00:00:00Z' WHERE realm = 'kept'"
            )
    finally:
        connection.close()
