"""Topic rules, device identity, ACL and session bookkeeping (all sans-IO)."""

from __future__ import annotations

import pytest

from astraea.core.mqtt_topics import is_valid_topic_filter, is_valid_topic_name, topic_matches
from astraea.core.sessions import SessionMessage, StoredSession
from astraea.transport.acl import TopicAcl
from astraea.transport.identity import DeviceIdentity
from astraea.transport.session_store import MemorySessionStore, pending_messages
from astraea.transport.sessions import InflightMessage, OutboundMessage, Session

IDENTITY = DeviceIdentity("test", "dev")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/#", "b/a", False),
        ("#", "a/b", True),
        ("+/+", "/x", True),
        ("+", "a/b", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "valid"),
    [
        ("a/b", True),
        ("a/+/b", True),
        ("a/#", True),
        ("#", True),
        ("+", True),
        ("a/#/b", False),
        ("a#", False),
        ("a/b+", False),
        ("", False),
        ("a\x00", False),
    ],
)
def test_topic_filter_validity(topic_filter: str, valid: bool) -> None:
    assert is_valid_topic_filter(topic_filter) is valid


def test_topic_name_validity() -> None:
    assert is_valid_topic_name("a/b")
    assert not any(is_valid_topic_name(name) for name in ("", "a/+", "a/#", "a\x00"))


@pytest.mark.parametrize(
    ("common_name", "identity"),
    [
        ("test/dev", DeviceIdentity("test", "dev")),
        ("justaname", None),
        ("a/b/c", None),
        ("/dev", None),
        ("test/", None),
        ("test/+", None),
    ],
)
def test_identity_from_common_name(common_name: str, identity: DeviceIdentity | None) -> None:
    assert DeviceIdentity.from_common_name(common_name) == identity


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [
        ("test/dev", True),
        ("test/dev/iface/path", True),
        ("test/dev/#", True),
        ("test/dev/+/value", True),
        ("test/device", False),
        ("test/other/x", False),
        ("test/#", False),
        ("test/+/x", False),
        ("#", False),
    ],
)
def test_acl_confines_a_device_to_its_root(topic: str, allowed: bool) -> None:
    assert TopicAcl(IDENTITY).allows(topic) is allowed


def test_granted_qos_is_the_best_matching_subscription() -> None:
    session = Session(IDENTITY, persistent=True, max_queued=1)
    session.subscriptions = {"test/dev/#": 1, "test/dev/a/+": 2}

    assert session.granted_qos("test/dev/a/b") == 2
    assert session.granted_qos("test/dev/x") == 1
    assert session.granted_qos("test/other") is None


def test_full_queue_drops_the_oldest() -> None:
    session = Session(IDENTITY, persistent=True, max_queued=2)

    results = [session.enqueue(OutboundMessage("t", bytes([n]), qos=1)) for n in range(4)]

    assert results == [True, True, False, False]
    assert [message.payload for message in session.queued] == [b"\x02", b"\x03"]
    assert session.dropped_messages == 2


def test_packet_ids_wrap_and_skip_those_in_flight() -> None:
    session = Session(IDENTITY, persistent=True, max_queued=1)
    session.inflight[1] = InflightMessage(OutboundMessage("t", b"", qos=1))
    session.inflight[3] = InflightMessage(OutboundMessage("t", b"", qos=1))

    assert [session.allocate_packet_id() for _ in range(2)] == [2, 4]
    for _ in range(65_531):  # 5 .. 65 535
        session.allocate_packet_id()
    assert session.allocate_packet_id() == 2


async def test_memory_store_resumes_only_persistent_sessions() -> None:
    store = MemorySessionStore(max_queued=5)
    assert await store.open(IDENTITY, clean=False) is None

    kept = StoredSession(None, {"test/dev/#": 1}, [SessionMessage("test/dev/a", b"x", 1)], [7])
    await store.release(IDENTITY, kept)
    assert await store.enqueue(IDENTITY, "test/dev/b", b"y", 2)
    assert not await store.enqueue(IDENTITY, "test/other", b"z", 1)  # no subscription
    assert not await store.enqueue(IDENTITY, "test/dev/b", b"z", 0)  # QoS 0 is not kept
    stored = await store.open(IDENTITY, clean=False)
    assert stored is not None
    assert stored.subscriptions == {"test/dev/#": 1} and stored.qos2_received == [7]
    # Capped by the subscription's QoS.
    assert stored.queued == [
        SessionMessage("test/dev/a", b"x", 1),
        SessionMessage("test/dev/b", b"y", 1),
    ]

    await store.release(IDENTITY, StoredSession(None))
    assert await store.open(IDENTITY, clean=True) is None
    assert await store.open(IDENTITY, clean=False) is None  # the clean connection discarded it


def test_restored_sessions_resend_what_was_sent() -> None:
    session = Session(IDENTITY, persistent=True, max_queued=5)
    session.restore(
        StoredSession(
            None,
            {"test/dev/#": 2},
            [
                SessionMessage("test/dev/a", b"1", 1, sent=True),
                SessionMessage("test/dev/b", b"2", 2),
            ],
        )
    )

    assert session.subscriptions == {"test/dev/#": 2}
    assert [(n, e.message.payload) for n, e in session.inflight.items()] == [(1, b"1")]
    assert [m.payload for m in session.queued] == [b"2"]
    assert pending_messages(session) == [
        SessionMessage("test/dev/a", b"1", 1, sent=True),
        SessionMessage("test/dev/b", b"2", 2),
    ]
