"""The codec of everything that crosses a broker: every message type, and what it refuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from astraea.bus import messages
from astraea.bus.messages import (
    CommandResult,
    CommandStatus,
    Connected,
    DeliveriesQueued,
    DeviceMessage,
    DisconnectCause,
    DisconnectDevice,
    Disconnected,
    Published,
    PublishToDevice,
    Registered,
    TriggersChanged,
)
from astraea.core.trigger_deliveries import QueuedDelivery

T0 = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)

EVERY_MESSAGE: list[messages.Message] = [
    DeviceMessage("test", "d1", Connected("192.0.2.7"), T0, node="node-a"),
    DeviceMessage("test", "d1", Disconnected(), T0),
    DeviceMessage("test", "d1", Published("/com.example.Lights/on", b"\x00\xff", 2), T0),
    DeviceMessage("test", "d1", Registered(), T0),
    PublishToDevice("test", "d1", "test/d1/com.example.Lights/on", b"\x01", 1),
    *(DisconnectDevice("test", "d1", cause) for cause in DisconnectCause),
    *(CommandResult(status) for status in CommandStatus),
    DeliveriesQueued(
        "test",
        "default",
        (QueuedDelivery(7, "d1", uuid.UUID(int=7), b'{"x":1}', 100, None, 0, 100),),
    ),
    TriggersChanged("test"),
]


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_decodes_to_what_was_encoded(message: messages.Message) -> None:
    decoded = messages.decode(messages.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"not msgpack at all", b"\x93\x01\x02"])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(messages.DecodeError):
        messages.decode(data)


def test_an_unknown_tag_or_version_is_a_decode_error() -> None:
    encoded = messages.encode(TriggersChanged("test"))
    assert msgspec.msgpack.decode(encoded)[0] == "triggers_changed.v1"
    for tag in ["triggers_changed.v2", "something_else.v1"]:
        with pytest.raises(messages.DecodeError):
            messages.decode(msgspec.msgpack.encode([tag, "test"]))
