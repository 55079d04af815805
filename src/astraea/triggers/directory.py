"""The `TriggerDirectory` of a running platform: triggers and policies as storage holds them."""

from __future__ import annotations

import uuid

from astraea.core.trigger_policies import Policy
from astraea.core.triggers import Trigger
from astraea.storage.base import Storage


class StorageDirectory:
    """Only resumed deliveries ask (fresh ones bring their trigger), and the engine remembers
    each answer, so scanning a realm's triggers per lookup costs little."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def find_trigger(self, realm: str, trigger_id: uuid.UUID) -> Trigger | None:
        for installed in await self._storage.triggers.list_all(realm):
            if installed.trigger_id == trigger_id:
                return installed.trigger
        return None

    async def find_policy(self, realm: str, name: str) -> Policy | None:
        return await self._storage.policies.get(realm, name)
