"""Background work of the platform process: expired samples are deleted from the database."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import KeyPair, platform_settings

from astraea.core.device_id import random_device_id
from astraea.platform import Platform
from astraea.storage.base import DatastreamSample, Realm


async def test_expired_samples_are_swept(
    tmp_path: Path, housekeeping_keys: KeyPair, realm_keys: KeyPair
) -> None:
    settings = platform_settings(tmp_path / "data", housekeeping_keys, expiry_sweep_seconds=0.05)
    platform = Platform(settings)
    await platform.start()
    try:
        storage = platform.storage
        assert storage is not None
        await storage.realms.create(Realm("r", realm_keys.public_pem))
        device = random_device_id()
        now = datetime.now(UTC)
        await storage.devices.register("r", device, "hash", {"org.example.V": (1, 0)}, now)

        def sample(path: str, expires_at: datetime | None) -> DatastreamSample:
            return DatastreamSample(
                "r", device, "org.example.V", 1, path, 1.5, now, now, expires_at
            )

        await storage.values.apply(
            [sample("/old", now - timedelta(seconds=1)), sample("/kept", None)]
        )
        database = settings.data_dir / "astraea.db"

        def paths() -> list[str]:
            with sqlite3.connect(database) as connection:
                rows = connection.execute("SELECT path FROM individual_datastreams").fetchall()
            return sorted(row[0] for row in rows)

        for _ in range(100):
            if paths() == ["/kept"]:
                break
            await asyncio.sleep(0.05)
        assert paths() == ["/kept"]
    finally:
        await platform.stop()
