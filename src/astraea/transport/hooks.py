"""The contract between the transport and the rest of the platform.

The transport knows nothing about storage or interfaces: it authenticates devices, moves
bytes and tells the platform what happened through these hooks. Guarantees it gives:

- Apart from `authenticate`, calls for one device never overlap and come in wire order:
  `on_connect`, then that connection's `on_publish` / `on_subscribe` calls one after the
  other, then `on_disconnect`. When a device reconnects (or a second connection takes
  over), the old connection's `on_disconnect` has returned before the new `on_connect`.
- A QoS 1/2 message is acknowledged to the device only after `on_publish` returned, so
  return once the message is durably accepted. Calls of different devices run
  concurrently, which is where a group commit finds its batches.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence


class RejectMessage(Exception):
    """Raised by `on_publish` for invalid data: the device is disconnected, nothing acked."""


class DisconnectReason(enum.StrEnum):
    """Why a connection ended; `on_disconnect` gets one, the rest only reach the logs."""

    CLIENT_DISCONNECT = "client_disconnect"
    CONNECTION_LOST = "connection_lost"
    PROTOCOL_ERROR = "protocol_error"
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    TAKEN_OVER = "taken_over"
    FORCED = "forced"
    ACL_VIOLATION = "acl_violation"
    REJECTED_MESSAGE = "rejected_message"
    SLOW_CONSUMER = "slow_consumer"
    HOOK_FAILURE = "hook_failure"
    NOT_AUTHORIZED = "not_authorized"
    INTERNAL_ERROR = "internal_error"
    SERVER_SHUTDOWN = "server_shutdown"


class TransportHooks(abc.ABC):
    """What the platform implements to receive device traffic."""

    @abc.abstractmethod
    async def authenticate(self, realm: str, device_id: str, peer_cert_der: bytes) -> bool:
        """Whether this (CA-verified) device may connect now; False for unknown, inhibited,
        deleted or revoked devices. The device then gets CONNACK 5 and is disconnected."""

    @abc.abstractmethod
    async def on_connect(
        self, realm: str, device_id: str, peer_ip: str, session_present: bool
    ) -> None:
        """The device is connected; runs before any of its publishes is handed over."""

    @abc.abstractmethod
    async def on_disconnect(self, realm: str, device_id: str, reason: DisconnectReason) -> None:
        """The connection announced by `on_connect` is gone."""

    @abc.abstractmethod
    async def on_publish(
        self, realm: str, device_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        """Accept one message (topic already checked against the device's ACL).

        Return once it is durably accepted; raise `RejectMessage` for invalid data.
        Any other exception also disconnects the device, without acknowledging.
        """

    async def on_subscribe(
        self, realm: str, device_id: str, granted: Sequence[tuple[str, int]]
    ) -> None:
        """The device now holds these (topic filter, QoS) subscriptions; optional."""
        return None
