"""Reaching a device from any process: through the transport node that holds it, or, while
it is away, through its stored persistent session.

Callers pass the node they believe holds the device (the one its connection record or its
last message names). The node answers whether it took the message; when it does not hold the
device (any more) or is gone, the stored session decides: a node that owns it is asked next,
and an unowned one takes QoS 1/2 messages in storage, for the device's next connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from astraea.bus.base import Bus, BusError, EndpointUnavailable
from astraea.bus.messages import (
    CommandStatus,
    DisconnectCause,
    DisconnectDevice,
    PublishToDevice,
)
from astraea.core.sessions import SessionMessage, StoredSession, stored_message

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 3.0  # seconds a node has to answer
_ATTEMPTS = 5  # a session may change hands while it is looked up; try a few times
_RETRY_PAUSE = 0.02  # seconds, while a node writes the session back


def node_endpoint(node: str) -> str:
    """The endpoint a transport node serves its devices' commands on."""
    return f"node.{node}"


class SessionDirectory(Protocol):
    """What routing needs of stored sessions (`astraea.storage.base.SessionRepository`)."""

    async def get(self, realm: str, device_id: str) -> StoredSession | None: ...

    async def enqueue(
        self, realm: str, device_id: str, message: SessionMessage, *, max_queued: int
    ) -> bool: ...

    async def discard(self, realm: str, device_id: str) -> None: ...


class DeviceCommands:
    def __init__(self, bus: Bus, sessions: SessionDirectory, *, max_queued: int) -> None:
        self._bus = bus
        self._sessions = sessions
        self._max_queued = max_queued

    async def publish(
        self,
        realm: str,
        device_id: str,
        topic: str,
        payload: bytes,
        qos: int,
        *,
        node: str | None,
    ) -> bool:
        """True when a live connection or a persistent session took the message."""
        command = PublishToDevice(realm, device_id, topic, payload, qos)
        asked: set[str] = set()
        for _ in range(_ATTEMPTS):
            if node and node not in asked:
                asked.add(node)
                status = await self._ask(node, command)
                if status is CommandStatus.DONE:
                    return True
                if status is CommandStatus.REFUSED:
                    return False
            session = await self._sessions.get(realm, device_id)
            if session is None:
                return False
            if session.owner is not None:
                if session.owner in asked:  # it is writing the session back: look again soon
                    asked.discard(session.owner)
                    await asyncio.sleep(_RETRY_PAUSE)
                node = session.owner
                continue
            stored = stored_message(session.subscriptions, topic, payload, qos)
            if stored is None:
                return False
            if await self._sessions.enqueue(realm, device_id, stored, max_queued=self._max_queued):
                return True
            node = None  # taken meanwhile: its owner is asked next
        logger.warning("could not reach %s/%s: its session kept moving", realm, device_id)
        return False

    async def disconnect(
        self, realm: str, device_id: str, cause: DisconnectCause, *, node: str | None
    ) -> bool:
        """Forces the device off; for every cause but TAKEN_OVER its session is discarded
        too. False when no node held the device."""
        found = False
        if node:
            status = await self._ask(node, DisconnectDevice(realm, device_id, cause))
            found = status is CommandStatus.DONE
        if cause is not DisconnectCause.TAKEN_OVER:
            await self._sessions.discard(realm, device_id)
        return found

    async def _ask(
        self, node: str, command: PublishToDevice | DisconnectDevice
    ) -> CommandStatus | None:
        """The node's answer; None when it is gone or does not answer."""
        try:
            result = await self._bus.request(node_endpoint(node), command, timeout=REQUEST_TIMEOUT)
        except EndpointUnavailable:
            return None
        except BusError as exc:
            logger.warning("transport node %s did not answer: %s", node, exc)
            return None
        return result.status
