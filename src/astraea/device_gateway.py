"""Connects the MQTT transport to ingestion: device identity checks, and every device
message through the group-commit queue so a QoS 1/2 acknowledgement means "stored"."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from cryptography import x509

from astraea.bus.base import DeviceCommands
from astraea.ingest.messages import Connected, DeviceMessage, Disconnected, Outcome, Published
from astraea.ingest.metrics import IngestMetrics
from astraea.storage.base import DeviceRepository
from astraea.transport.hooks import DisconnectReason, RejectMessage, TransportHooks

logger = logging.getLogger(__name__)

Submit = Callable[[DeviceMessage], Awaitable[Outcome]]


class DeviceGateway(TransportHooks):
    def __init__(
        self,
        devices: DeviceRepository,
        submit: Submit,
        on_outcome: Callable[[Outcome], None] | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        """`on_outcome` sees every outcome; set `commands` once the transport serving them
        exists (it needs this gateway first)."""
        self._devices = devices
        self._submit = submit
        self._on_outcome = on_outcome
        self._metrics = metrics
        self.commands: DeviceCommands | None = None

    async def authenticate(self, realm: str, device_id: str, peer_cert_der: bytes) -> bool:
        device = await self._devices.get(realm, device_id)
        if device is None or device.credentials_secret_hash is None:
            return False
        if device.credentials_inhibited or device.deletion_in_progress:
            return False
        # Only the latest certificate is valid: issuing a new one supersedes (revokes) the old.
        serial = x509.load_der_x509_certificate(peer_cert_der).serial_number
        return device.cert_serial == str(serial)

    async def on_connect(
        self, realm: str, device_id: str, peer_ip: str, session_present: bool
    ) -> None:
        await self._handle(realm, device_id, Connected(peer_ip))

    async def on_disconnect(self, realm: str, device_id: str, reason: DisconnectReason) -> None:
        await self._handle(realm, device_id, Disconnected())

    async def on_publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        suffix = topic[len(realm) + 1 + len(device_id) :]
        outcome = await self._handle(realm, device_id, Published(suffix, payload, qos))
        if self._metrics is not None:
            self._metrics.record(realm, len(payload), outcome)
        if outcome.disconnect:
            assert outcome.error is not None
            raise RejectMessage(outcome.error.name)

    async def _handle(
        self, realm: str, device_id: str, kind: Connected | Disconnected | Published
    ) -> Outcome:
        message = DeviceMessage(realm, device_id, kind, datetime.now(UTC))
        outcome = await self._submit(message)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        if outcome.publishes and self.commands is None:
            logger.warning("no transport to send %d message(s) to devices", len(outcome.publishes))
            return outcome
        for publish in outcome.publishes:
            assert self.commands is not None
            await self.commands.publish(
                publish.realm, publish.device_id, publish.topic, publish.payload, publish.qos
            )
        return outcome
