"""Persistent MQTT sessions as storage keeps them between connections (pure).

A device that connects with clean_session=0 resumes its subscriptions and the QoS 1/2
messages queued for it while it was away, whichever transport node it reaches. While a node
holds the device the session is *owned* by that node, which keeps it in memory and answers for
it; otherwise it is unowned and messages for it are appended in storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from astraea.core.mqtt_topics import topic_matches

MAX_QUEUED_MESSAGES = 1000
"""Messages a session keeps for its device at most (as VerneMQ's max_offline_messages)."""


@dataclass(frozen=True, slots=True)
class SessionMessage:
    topic: str
    payload: bytes
    qos: int  # 1 or 2: QoS 0 messages are never kept for later
    sent: bool = False  # sent once and not acknowledged: resent with DUP


@dataclass(slots=True)
class StoredSession:
    owner: str | None  # the transport node holding the device, None while it is away
    subscriptions: dict[str, int] = field(default_factory=dict)  # topic filter -> QoS
    queued: list[SessionMessage] = field(default_factory=list)  # oldest first
    # Inbound QoS 2 packet ids whose PUBREL has not come yet: a resent publish with one of
    # them is a duplicate, not a new message.
    qos2_received: list[int] = field(default_factory=list)


def granted_qos(subscriptions: dict[str, int], topic: str) -> int | None:
    """The highest QoS a subscription matching `topic` grants, None when none matches."""
    return max(
        (qos for topic_filter, qos in subscriptions.items() if topic_matches(topic_filter, topic)),
        default=None,
    )


def stored_message(
    subscriptions: dict[str, int], topic: str, payload: bytes, qos: int
) -> SessionMessage | None:
    """The message as an away session keeps it (QoS capped by the subscription), or None
    when the session does not take it."""
    granted = granted_qos(subscriptions, topic)
    if granted is None or min(granted, qos) == 0:
        return None
    return SessionMessage(topic, payload, min(granted, qos))
