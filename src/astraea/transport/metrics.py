"""Counters the transport keeps for monitoring (and for tests that check its bounds)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TransportStats:
    handshake_failures: int = 0
    connections_refused: int = 0
    messages_received: int = 0
    #: Server->device QoS 0 messages dropped because the device did not read fast enough.
    qos0_dropped: int = 0
    #: Server->device QoS 1/2 messages dropped from a full session queue.
    queued_dropped: int = 0
    #: Largest number of decoded packets any connection had waiting for the platform.
    pending_high_water: int = 0
