"""Ingestion fixtures: a real SQLite file with a realm, interfaces and a registered device."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from ingest_support import INTERFACES, INTROSPECTION, REALM, T0, Clock, MessageFactory

from astraea.core.device_id import random_device_id
from astraea.core.interface_parser import parse_interface
from astraea.ingest import DeviceMessage, Ingestor, Published
from astraea.storage import open_storage
from astraea.storage.base import Realm, Storage


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "astraea.db"


@pytest.fixture
async def storage(db_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(f"sqlite://{db_path}")
    try:
        await opened.realms.create(Realm(name=REALM, jwt_public_key_pem="pem"))
        for document in INTERFACES:
            await opened.interfaces.install(REALM, parse_interface(document))
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def device(storage: Storage) -> str:
    device_id = random_device_id()
    await storage.devices.register(REALM, device_id, "hash", INTROSPECTION, T0)
    return device_id


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ingestor(storage: Storage, clock: Clock) -> Ingestor:
    return Ingestor(storage, clock)


@pytest.fixture
def publish(device: str, clock: Clock) -> MessageFactory:
    """A publish from the device, received now (the clock) unless told otherwise."""

    def build(
        suffix: str,
        payload: bytes = b"",
        *,
        qos: int = 2,
        device_id: str | None = None,
        at: datetime | None = None,
    ) -> DeviceMessage:
        return DeviceMessage(
            REALM, device_id or device, Published(suffix, payload, qos), at or clock.now
        )

    return build
