"""The platform side of a transport node: who may connect, where device messages go, and
where persistent sessions live while their device is away.

Every device message is published to ingestion's stream, partitioned by device, and the
transport acknowledges a QoS 1/2 publish only once `publish` returned: with the in-process bus
that is once ingestion stored it, with a broker once the broker confirmed it durably.

Sessions live in storage, owned by the node that holds the device. A device that connects here
while another node holds it (it moved, or that node has not noticed it left) is first taken
over: that node is asked to close the connection and write the session back, then this node
takes it. A node that does not answer is taken as gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from cryptography import x509

from astraea.bus.base import Bus, BusError, EndpointUnavailable, Stream, device_key
from astraea.bus.device_commands import REQUEST_TIMEOUT, node_endpoint
from astraea.bus.messages import (
    Connected,
    DeviceMessage,
    DeviceMessageKind,
    DisconnectCause,
    DisconnectDevice,
    Disconnected,
    Published,
)
from astraea.core.sessions import StoredSession, stored_message
from astraea.storage.base import DeviceRepository, SessionRepository
from astraea.transport.hooks import DisconnectReason, TransportHooks
from astraea.transport.identity import DeviceIdentity
from astraea.transport.session_store import SessionStore

logger = logging.getLogger(__name__)


class DeviceGateway(TransportHooks, SessionStore):
    def __init__(
        self,
        node: str,
        devices: DeviceRepository,
        sessions: SessionRepository,
        bus: Bus,
        stream: Stream[DeviceMessage],
        *,
        max_queued: int,
    ) -> None:
        self._node = node
        self._devices = devices
        self._sessions = sessions
        self._bus = bus
        self._stream = stream
        self._max_queued = max_queued
        # The node each authenticated device was connected through, for `open`.
        self._elsewhere: dict[DeviceIdentity, str] = {}
        # Sessions being written back: a message for the device waits for them.
        self._releasing: dict[DeviceIdentity, asyncio.Future[None]] = {}

    # TransportHooks

    async def authenticate(self, realm: str, device_id: str, peer_cert_der: bytes) -> bool:
        device = await self._devices.get(realm, device_id)
        if device is None or device.credentials_secret_hash is None:
            return False
        if device.credentials_inhibited or device.deletion_in_progress:
            return False
        # Only the latest certificate is valid: issuing a new one supersedes (revokes) the old.
        serial = x509.load_der_x509_certificate(peer_cert_der).serial_number
        if device.cert_serial != str(serial):
            return False
        if device.connected and device.connection_node not in ("", self._node):
            self._elsewhere[DeviceIdentity(realm, device_id)] = device.connection_node
        return True

    async def on_connect(
        self, realm: str, device_id: str, peer_ip: str, session_present: bool
    ) -> None:
        await self._publish(realm, device_id, Connected(peer_ip))

    async def on_disconnect(self, realm: str, device_id: str, reason: DisconnectReason) -> None:
        await self._publish(realm, device_id, Disconnected())

    async def on_publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        suffix = topic[len(realm) + 1 + len(device_id) :]
        await self._publish(realm, device_id, Published(suffix, payload, qos))

    async def _publish(self, realm: str, device_id: str, kind: DeviceMessageKind) -> None:
        message = DeviceMessage(realm, device_id, kind, datetime.now(UTC), self._node)
        await self._bus.publish(self._stream, device_key(realm, device_id), message)

    # SessionStore

    async def open(self, identity: DeviceIdentity, *, clean: bool) -> StoredSession | None:
        realm, device_id = identity.realm, identity.device_id
        stored = await self._sessions.get(realm, device_id)
        others = {self._elsewhere.pop(identity, "")}
        if stored is not None and stored.owner is not None:
            others.add(stored.owner)
        for node in others - {"", self._node}:
            await self._take_over(identity, node)
        if clean:
            if stored is not None:
                await self._sessions.discard(realm, device_id)
            return None
        taken = None if stored is None else await self._sessions.take(realm, device_id, self._node)
        if taken is None:
            await self._sessions.create(realm, device_id, self._node, {})
        return taken

    async def _take_over(self, identity: DeviceIdentity, node: str) -> None:
        """Asks `node` to let go of the device; it answers once the session is stored."""
        command = DisconnectDevice(identity.realm, identity.device_id, DisconnectCause.TAKEN_OVER)
        try:
            await self._bus.request(node_endpoint(node), command, timeout=REQUEST_TIMEOUT)
        except EndpointUnavailable:
            # Gone: its node record expires and a surviving node cleans up after it.
            logger.info("%s: node %s is gone; taking the session over", identity, node)
        except BusError as exc:
            logger.warning("%s: node %s did not let go (%s); taking over", identity, node, exc)

    async def subscribed(self, identity: DeviceIdentity, subscriptions: dict[str, int]) -> None:
        await self._sessions.save_subscriptions(
            identity.realm, identity.device_id, self._node, subscriptions
        )

    async def release(self, identity: DeviceIdentity, session: StoredSession) -> None:
        done = self._releasing[identity] = asyncio.get_running_loop().create_future()
        try:
            await self._sessions.release(identity.realm, identity.device_id, self._node, session)
        finally:
            done.set_result(None)
            if self._releasing.get(identity) is done:
                del self._releasing[identity]

    async def discard(self, identity: DeviceIdentity) -> None:
        await self._sessions.discard(identity.realm, identity.device_id)

    async def enqueue(self, identity: DeviceIdentity, topic: str, payload: bytes, qos: int) -> bool:
        releasing = self._releasing.get(identity)
        if releasing is not None:
            await releasing
        realm, device_id = identity.realm, identity.device_id
        session = await self._sessions.get(realm, device_id)
        if session is None:
            return False
        message = stored_message(session.subscriptions, topic, payload, qos)
        return message is not None and await self._sessions.enqueue(
            realm, device_id, message, max_queued=self._max_queued
        )
