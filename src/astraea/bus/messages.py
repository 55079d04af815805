"""Every message that crosses the bus, and their one codec.

Messages are msgspec structs tagged with their name and version (`device_message.v1`): a
process that receives a version it does not know fails to decode it and drops it with an
error, instead of misreading it. A change that old readers could misread gets a new version;
adding a field with a default does not. The `inproc` bus hands the objects over as they are;
brokers carry `encode(message)`, MessagePack with fields as arrays (compact, and ~10x faster
than JSON for the binary payloads devices send).
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from astraea.core.trigger_deliveries import QueuedDelivery


class _Message(msgspec.Struct, array_like=True, gc=False):
    """gc=False: messages hold no reference cycles, and ingestion creates one per publish.
    Not frozen only because mypy cannot check frozen msgspec subclasses; nothing mutates them."""


# Device messages: from transport nodes (and Pairing) to ingestion, partitioned by device.


class Connected(_Message, tag="connected.v1"):
    ip: str


class Disconnected(_Message, tag="disconnected.v1"):
    """The connection through `DeviceMessage.node` ended; ingestion ignores it when the
    device has connected through another node since."""


class Published(_Message, tag="published.v1"):
    topic_suffix: str  # the topic after `<realm>/<device_id>`: "" or "/..."
    payload: bytes
    qos: int


class Registered(_Message, tag="registered.v1"):
    """Pairing registered the device (for `device_registered` triggers)."""


DeviceMessageKind = Connected | Disconnected | Published | Registered


class DeviceMessage(_Message, tag="device_message.v1"):
    realm: str
    device_id: str  # canonical 22-character form
    kind: DeviceMessageKind
    received_at: datetime  # aware UTC
    node: str = ""  # the transport node that received it; "" when not from a device


# Commands: to the transport node that holds a device, with a reply.


class DisconnectCause(enum.StrEnum):
    REJECTED = "rejected"  # invalid data: the session is discarded, as Astarte does
    FORCED = "forced"  # an administrator's decision: the session is discarded
    TAKEN_OVER = "taken_over"  # the device connects elsewhere: the session is kept (stored)


class PublishToDevice(_Message, tag="publish_to_device.v1"):
    realm: str
    device_id: str
    topic: str
    payload: bytes
    qos: int


class DisconnectDevice(_Message, tag="disconnect_device.v1"):
    realm: str
    device_id: str
    cause: DisconnectCause


Command = PublishToDevice | DisconnectDevice


class CommandStatus(enum.StrEnum):
    DONE = "done"  # delivered or queued in the device's session; disconnected
    REFUSED = "refused"  # the device's session cannot take it (no matching subscription...)
    NOT_HERE = "not_here"  # the node does not hold the device (any more)


class CommandResult(_Message, tag="command_result.v1"):
    status: CommandStatus


# Broadcasts: notifications to every process; what they announce is stored.


class DeliveriesQueued(_Message, tag="deliveries_queued.v1"):
    """Ingestion stored these deliveries in the queue (realm, policy)."""

    realm: str
    policy: str
    deliveries: tuple[QueuedDelivery, ...]


class TriggersChanged(_Message, tag="triggers_changed.v1"):
    """The realm's triggers or policies changed: reload them now rather than at the next poll."""

    realm: str


BroadcastMessage = DeliveriesQueued | TriggersChanged

Message = DeviceMessage | Command | CommandResult | BroadcastMessage

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class DecodeError(ValueError):
    """Bytes that are not a message this version knows."""


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    try:
        message: Message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from None
    return message
