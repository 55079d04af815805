"""Bus interfaces. Components depend on these, never on each other's objects, so the same
code runs all in one process (`inproc`) or as separate roles over a broker."""

from __future__ import annotations

from typing import Protocol


class DeviceCommands(Protocol):
    """Reaches devices through whichever transport node holds their session."""

    async def publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> bool:
        """True when a live connection or a persistent session took the message."""

    async def disconnect(self, realm: str, device_id: str, reason: str) -> bool:
        """Forces the device off and discards its session; False if it had none."""
