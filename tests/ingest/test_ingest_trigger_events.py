"""What ingestion reports for triggers beyond storing: value timestamps and new datastream paths."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ingest_support import (
    OBJECTS,
    REALM,
    T0,
    VALUES,
    Clock,
    MessageFactory,
    bson_value,
    connected,
    disconnected,
    process_one,
)

from astraea.ingest import DatastreamPathCreated, IncomingData, Ingestor, Outcome
from astraea.storage.base import Storage


def created_paths(outcomes: Sequence[Outcome]) -> list[str]:
    return [
        event.path
        for outcome in outcomes
        for event in outcome.events
        if isinstance(event, DatastreamPathCreated)
    ]


async def test_incoming_data_carries_the_explicit_timestamp_only_where_mapped(
    ingestor: Ingestor, publish: MessageFactory
) -> None:
    stamp = T0 - timedelta(hours=1, milliseconds=250)
    stamped, plain = await ingestor.process(
        [
            publish(f"/{VALUES}/s1/stamped", bson_value(7, stamp)),
            publish(f"/{VALUES}/s1/value", bson_value(1.5, stamp)),
        ]
    )
    assert isinstance(stamped.events[0], IncomingData)
    assert stamped.events[0].timestamp == stamp
    assert isinstance(plain.events[0], IncomingData)
    assert plain.events[0].timestamp is None


async def test_first_sample_of_each_path_creates_it_once(
    ingestor: Ingestor, device: str, publish: MessageFactory, clock: Clock
) -> None:
    stamp = T0 - timedelta(minutes=5)
    outcomes = await ingestor.process(
        [
            publish(f"/{VALUES}/s1/value", bson_value(1.0)),
            publish(f"/{VALUES}/s1/value", bson_value(2.0)),
            publish(f"/{VALUES}/s2/value", bson_value(3.0)),
            publish(f"/{VALUES}/s1/stamped", bson_value(4, stamp)),
        ]
    )
    assert created_paths(outcomes) == ["/s1/value", "/s2/value", "/s1/stamped"]
    first, _, _, explicit = outcomes
    assert first.events[1:] == (
        DatastreamPathCreated(REALM, device, T0, VALUES, 1, "/s1/value", 1.0, T0),
    )
    (created,) = [e for e in explicit.events if isinstance(e, DatastreamPathCreated)]
    assert created.timestamp == stamp and created.value == 4
    clock.advance(1)
    later = await ingestor.process([publish(f"/{VALUES}/s2/value", bson_value(5.0))])
    assert created_paths(later) == []


async def test_paths_stored_before_are_not_created_again(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory, clock: Clock
) -> None:
    await ingestor.process([publish(f"/{VALUES}/s1/value", bson_value(1.0))])
    clock.advance(1)
    restarted = Ingestor(storage, clock)
    await restarted.process([connected(device, clock.now)])
    outcomes = await restarted.process(
        [
            publish(f"/{VALUES}/s1/value", bson_value(2.0)),
            publish(f"/{VALUES}/s3/value", bson_value(3.0)),
        ]
    )
    assert created_paths(outcomes) == ["/s3/value"]
    await restarted.process([disconnected(device, clock.now), connected(device, clock.now)])
    again = await restarted.process([publish(f"/{VALUES}/s3/value", bson_value(4.0))])
    assert created_paths(again) == []


async def test_expired_paths_are_created_anew(
    ingestor: Ingestor, storage: Storage, device: str, publish: MessageFactory, clock: Clock
) -> None:
    """`short` samples live 60 s: a device reconnecting later finds the path gone."""
    await ingestor.process([publish(f"/{VALUES}/s1/short", bson_value(1.0))])
    clock.advance(120)
    restarted = Ingestor(storage, clock)
    outcome = await process_one(restarted, publish(f"/{VALUES}/s1/short", bson_value(2.0)))
    assert created_paths([outcome]) == ["/s1/short"]


async def test_objects_and_refused_values_create_no_path(
    ingestor: Ingestor, publish: MessageFactory
) -> None:
    outcomes = await ingestor.process(
        [
            publish(f"/{OBJECTS}/kitchen", bson_value({"temp": 20.5, "hum": 40}, T0)),
            publish(f"/{VALUES}/s1/value", bson_value("not a double")),
            publish(f"/{VALUES}/s1/value", b""),
        ]
    )
    assert [outcome.accepted for outcome in outcomes] == [True, False, False]
    assert created_paths(outcomes) == []
