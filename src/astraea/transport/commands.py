"""`DeviceCommands` served by the MQTT server of this process."""

from __future__ import annotations

from astraea.transport.server import MqttServer


class LocalDeviceCommands:
    def __init__(self, server: MqttServer) -> None:
        self._server = server

    async def publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> bool:
        return await self._server.publish_to_device(realm, device_id, topic, payload, qos)

    async def disconnect(self, realm: str, device_id: str, reason: str) -> bool:
        return await self._server.disconnect_device(realm, device_id, reason)
