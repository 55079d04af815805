"""Settings of the MQTT transport, read once and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from astraea.core.sessions import MAX_QUEUED_MESSAGES
from astraea.transport.packets import DEFAULT_MAX_PACKET_SIZE


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """Defaults follow the reference broker (Astarte's VerneMQ) where it has one."""

    #: CA bundle that signs device certificates (the pairing CA); client certs are required.
    ca_file: Path
    #: The broker's own certificate chain and key.
    cert_file: Path
    key_file: Path
    host: str = "0.0.0.0"
    port: int = 8883
    #: Largest packet accepted from a device, header included.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    #: Server->device QoS 1/2 messages awaiting their ack, per session.
    max_inflight: int = 100
    #: Server->device QoS 1/2 messages waiting behind the in-flight window, per session.
    #: Offline sessions drop the oldest past it; a connected device that lets it overflow
    #: is too slow and gets disconnected.
    max_queued_messages: int = MAX_QUEUED_MESSAGES
    #: Decoded packets waiting for the platform, per connection; reading pauses at it.
    max_pending_packets: int = 1000
    #: Bytes buffered towards a device before QoS 0 messages are dropped and reading pauses.
    write_buffer_limit: int = 256 * 1024
    #: TLS handshakes in progress at once; the rest wait so a connection storm is paced.
    max_concurrent_handshakes: int = 32
    handshake_timeout: float = 10.0
    #: Seconds a device has to send CONNECT once its TLS session is up.
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.max_inflight < 65_535:
            raise ValueError("max_inflight must be between 1 and 65 534")
        positive = (
            self.max_packet_size,
            self.max_queued_messages,
            self.max_pending_packets,
            self.write_buffer_limit,
            self.max_concurrent_handshakes,
        )
        if min(positive) <= 0 or min(self.handshake_timeout, self.connect_timeout) <= 0:
            raise ValueError("sizes, limits and timeouts must be positive")
