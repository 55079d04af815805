"""Astraea's MQTT 3.1.1 device transport.

Sans-IO layers (`packets`, `topics`, `identity`, `acl`, `sessions`, `connection_state`)
import no asyncio, sockets or TLS, so device-side code may reuse them; `device_protocol`
and `server` are the asyncio shell. The platform implements `TransportHooks` and talks to
devices through `astraea.transport.server.MqttServer`, which this package deliberately
does not import.
"""

from astraea.transport.hooks import DisconnectReason, RejectMessage, TransportHooks
from astraea.transport.packets import ProtocolError
from astraea.transport.settings import TransportSettings

__all__ = [
    "DisconnectReason",
    "ProtocolError",
    "RejectMessage",
    "TransportHooks",
    "TransportSettings",
]
