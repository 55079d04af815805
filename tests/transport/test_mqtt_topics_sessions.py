"""Topic rules, device identity, ACL and session bookkeeping (all sans-IO)."""

from __future__ import annotations

import pytest

from astraea.transport.acl import TopicAcl
from astraea.transport.identity import DeviceIdentity
from astraea.transport.sessions import InflightMessage, OutboundMessage, Session, SessionRegistry
from astraea.transport.topics import is_valid_topic_filter, is_valid_topic_name, topic_matches

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


def test_registry_resumes_only_persistent_sessions() -> None:
    registry = SessionRegistry(max_queued_messages=5)

    clean, present = registry.open(IDENTITY, clean_session=True)
    assert not present
    registry.release(clean)
    assert registry.get(IDENTITY) is None

    persistent, present = registry.open(IDENTITY, clean_session=False)
    registry.release(persistent)
    assert not present
    assert registry.open(IDENTITY, clean_session=False) == (persistent, True)

    fresh, present = registry.open(IDENTITY, clean_session=True)
    assert fresh is not persistent and not present
    assert registry.discard(IDENTITY)
    assert len(registry) == 0
