"""Per-device and per-interface traffic counters, summed in memory between writes.

Counters are statistics, not acknowledged data: Astarte itself keeps them in memory and
persists them at disconnection. Writing them once per flush instead of once per batch keeps
them off the hot path (each counted device costs the device repository statements).
"""

from __future__ import annotations

from astraea.bus.messages import DeviceMessage
from astraea.storage.base import DeviceRepository, TrafficUpdate

_TrafficKey = tuple[str, str, str | None, int | None]


class TrafficCounter:
    def __init__(self) -> None:
        self._updates: dict[_TrafficKey, TrafficUpdate] = {}

    def count(
        self, message: DeviceMessage, interface_name: str | None, major: int | None, size: int
    ) -> None:
        """Counts one received message of `size` bytes (towards an interface when given)."""
        key = (message.realm, message.device_id, interface_name, major)
        update = self._updates.get(key)
        if update is None:
            self._updates[key] = TrafficUpdate(
                message.realm,
                message.device_id,
                interface_name,
                major,
                1,
                size,
                message.received_at,
            )
        else:
            update.msgs += 1
            update.bytes += size
            update.seen_at = message.received_at

    async def flush(self, devices: DeviceRepository) -> None:
        """Writes what was counted since the last flush; kept for the next one on failure."""
        if self._updates:
            await devices.add_traffic(list(self._updates.values()))
            self._updates.clear()
