"""A transport node's place among the others: its command endpoint, its heartbeat, and the
clean-up after nodes that died.

A node's name identifies it to the rest of the platform: connection records and sessions
name it, and commands for its devices reach it at `node.<name>`. A node that stops writing
its heartbeat is dead; the first node to notice marks its devices disconnected (by publishing
their disconnection to ingestion, so `device_disconnected` triggers fire) and frees its
sessions. A node that restarts under the same name cleans up after its previous life itself,
before it accepts a device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from astraea.bus.base import Bus, Stream, Subscription, device_key
from astraea.bus.device_commands import node_endpoint
from astraea.bus.messages import (
    Command,
    CommandResult,
    CommandStatus,
    DeviceMessage,
    DisconnectCause,
    DisconnectDevice,
    Disconnected,
    PublishToDevice,
)
from astraea.storage.base import DeviceRepository, NodeRepository, SessionRepository
from astraea.transport.hooks import DisconnectReason
from astraea.transport.identity import DeviceIdentity
from astraea.transport.server import MqttServer

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0  # seconds
DEAD_AFTER = 15.0  # seconds without a heartbeat

_CLOSE_REASONS = {
    DisconnectCause.REJECTED: DisconnectReason.REJECTED_MESSAGE,
    DisconnectCause.FORCED: DisconnectReason.FORCED,
}


class TransportNode:
    def __init__(
        self,
        name: str,
        server: MqttServer,
        bus: Bus,
        stream: Stream[DeviceMessage],
        devices: DeviceRepository,
        nodes: NodeRepository,
        sessions: SessionRepository,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self.name = name
        self._server = server
        self._bus = bus
        self._stream = stream
        self._devices = devices
        self._nodes = nodes
        self._sessions = sessions
        self._heartbeat_interval = heartbeat_interval
        self._dead_after = timedelta(seconds=dead_after)
        self._endpoint: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Cleans up after this node's previous life, then takes commands; call it before
        the MQTT server accepts devices."""
        await self._nodes.heartbeat(self.name, _now())
        await self._bury(self.name)
        self._endpoint = await self._bus.serve(node_endpoint(self.name), self._handle)
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="node heartbeat"),
            asyncio.create_task(self._sweep_forever(), name="dead node sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._endpoint is not None:
            await self._endpoint.cancel()
            self._endpoint = None

    async def _handle(self, command: Command) -> CommandResult:
        identity = DeviceIdentity(command.realm, command.device_id)
        if isinstance(command, PublishToDevice):
            taken = self._server.publish_here(identity, command.topic, command.payload, command.qos)
            status = {None: CommandStatus.NOT_HERE, True: CommandStatus.DONE}.get(
                taken, CommandStatus.REFUSED
            )
            return CommandResult(status)
        assert isinstance(command, DisconnectDevice)
        if command.cause is DisconnectCause.TAKEN_OVER:
            found = await self._server.hand_over(identity)
        else:  # the caller may be ingestion handling this very device's message: no waiting
            found = self._server.close_device(identity, _CLOSE_REASONS[command.cause])
        return CommandResult(CommandStatus.DONE if found else CommandStatus.NOT_HERE)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self._nodes.heartbeat(self.name, _now())
            except Exception:  # retried at the next beat
                logger.exception("transport node %s: heartbeat failed", self.name)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                for dead in await self._nodes.claim_dead(_now() - self._dead_after):
                    logger.warning("transport node %s stopped beating: cleaning up", dead)
                    await self._bury(dead)
            except Exception:  # retried at the next sweep
                logger.exception("cleaning up after dead transport nodes failed")

    async def _bury(self, node: str) -> None:
        """Frees the sessions of `node` and reports its devices disconnected."""
        freed = await self._sessions.release_node(node)
        devices = await self._devices.connected_through(node)
        for realm, device_id in devices:
            message = DeviceMessage(realm, device_id, Disconnected(), _now(), node)
            await self._bus.publish(self._stream, device_key(realm, device_id), message)
        if freed or devices:
            logger.info(
                "node %s: %d sessions freed, %d devices disconnected", node, freed, len(devices)
            )


def _now() -> datetime:
    return datetime.now(UTC)
