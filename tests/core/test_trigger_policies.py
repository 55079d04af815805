"""Delivery policies: Astarte's validation rules, rendering and the retry decision."""

from __future__ import annotations

from typing import Any

import pytest

from astraea.core.trigger_policies import (
    DEFAULT_POLICY,
    ErrorHandler,
    ErrorKeyword,
    Policy,
    PolicyValidationError,
    Strategy,
    parse_policy,
    policy_to_json,
)


def policy(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "p",
        "maximum_capacity": 100,
        "error_handlers": [{"on": "any_error", "strategy": "discard"}],
    }
    doc.update(overrides)
    return {key: value for key, value in doc.items() if value is not ...}


def errors_of(doc: object) -> dict[str, list[Any]]:
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(doc)
    return caught.value.errors


def test_documentation_examples() -> None:
    simple = parse_policy(policy(name="simple_policy"))
    assert simple == Policy(
        name="simple_policy",
        maximum_capacity=100,
        error_handlers=(ErrorHandler(ErrorKeyword.ANY_ERROR, Strategy.DISCARD),),
    )
    complex_policy = parse_policy(
        {
            "name": "complex_policy",
            "maximum_capacity": 100,
            "error_handlers": [
                {"on": "server_error", "strategy": "retry"},
                {"on": "client_error", "strategy": "discard"},
            ],
            "retry_times": 5,
            "event_ttl": 10,
        }
    )
    assert complex_policy.retry_times == 5 and complex_policy.event_ttl == 10
    assert complex_policy.effective_prefetch_count == 1


def test_rendering_round_trips() -> None:
    doc = {
        "name": "p",
        "maximum_capacity": 10,
        "retry_times": 3,
        "event_ttl": 60,
        "prefetch_count": 5,
        "error_handlers": [
            {"on": [500, 503], "strategy": "retry"},
            {"on": "client_error", "strategy": "discard"},
        ],
    }
    parsed = parse_policy(doc)
    assert policy_to_json(parsed) == doc
    assert parse_policy(policy_to_json(parsed)) == parsed


def test_unset_optional_integers_render_null_and_strategy_defaults_to_discard() -> None:
    rendered = policy_to_json(parse_policy(policy(error_handlers=[{"on": "any_error"}])))
    assert rendered == {
        "name": "p",
        "maximum_capacity": 100,
        "retry_times": None,
        "event_ttl": None,
        "prefetch_count": None,
        "error_handlers": [{"on": "any_error", "strategy": "discard"}],
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name": ...}, {"name": ["can't be blank"]}),
        ({"name": "@p"}, {"name": ["has invalid format"]}),
        ({"name": "a\nb"}, {"name": ["has invalid format"]}),
        ({"name": "x" * 129}, {"name": ["should be at most 128 character(s)"]}),
        ({"maximum_capacity": ...}, {"maximum_capacity": ["can't be blank"]}),
        ({"maximum_capacity": 0}, {"maximum_capacity": ["is invalid"]}),
        ({"maximum_capacity": 1_000_001}, {"maximum_capacity": ["is invalid"]}),
        ({"maximum_capacity": "10"}, {"maximum_capacity": ["is invalid"]}),
        ({"event_ttl": 0}, {"event_ttl": ["is invalid"]}),
        ({"event_ttl": 86_401}, {"event_ttl": ["is invalid"]}),
        ({"prefetch_count": 0}, {"prefetch_count": ["is invalid"]}),
        ({"prefetch_count": 301}, {"prefetch_count": ["is invalid"]}),
        ({"error_handlers": ...}, {"error_handlers": ["can't be blank"]}),
        ({"error_handlers": []}, {"error_handlers": ["can't be blank"]}),
        ({"error_handlers": "any_error"}, {"error_handlers": ["is invalid"]}),
    ],
)
def test_field_rules(overrides: dict[str, object], expected: dict[str, list[Any]]) -> None:
    assert errors_of(policy(**overrides)) == expected


def test_bounds_are_inclusive() -> None:
    parsed = parse_policy(
        policy(
            name="x" * 128,
            maximum_capacity=1_000_000,
            event_ttl=86_400,
            prefetch_count=300,
            retry_times=100,
            error_handlers=[{"on": "any_error", "strategy": "retry"}],
        )
    )
    assert parsed.retry_times == 100
    parse_policy(policy(maximum_capacity=1, event_ttl=1, prefetch_count=1))


def test_at_most_200_handlers() -> None:
    handlers = [{"on": [400 + index]} for index in range(200)]
    assert len(parse_policy(policy(error_handlers=handlers)).error_handlers) == 200
    assert errors_of(policy(error_handlers=[*handlers, {"on": [600 - 1]}])) == {
        "error_handlers": ["should have at most 200 item(s)"]
    }


@pytest.mark.parametrize(
    "on", ["some_error", "", [], [399], [600], [404, "500"], [True], 404, {"x": 1}]
)
def test_invalid_on(on: object) -> None:
    expected = "can't be blank" if on == "" else "is invalid"
    errors = errors_of(policy(error_handlers=[{"on": "client_error"}, {"on": on}]))
    assert errors == {"error_handlers": [{}, {"on": [expected]}]}


def test_invalid_strategy_and_missing_on() -> None:
    errors = errors_of(
        policy(error_handlers=[{"strategy": "later"}, {"on": "any_error", "strategy": None}])
    )
    assert errors == {
        "error_handlers": [
            {"on": ["can't be blank"], "strategy": ["is invalid"]},
            {"strategy": ["can't be blank"]},
        ]
    }


@pytest.mark.parametrize(
    "handlers",
    [
        [{"on": "any_error"}, {"on": "client_error"}],
        [{"on": "server_error"}, {"on": [503]}],
        [{"on": [404, 418]}, {"on": [500, 418]}],
        [{"on": "client_error"}, {"on": "client_error"}],
    ],
)
def test_overlapping_handlers(handlers: list[dict[str, object]]) -> None:
    assert errors_of(policy(error_handlers=handlers)) == {
        "error_handlers": ["must all handle distinct errors."]
    }


def test_disjoint_handlers_and_repeated_codes_in_one_handler() -> None:
    parse_policy(policy(error_handlers=[{"on": "client_error"}, {"on": "server_error"}]))
    parse_policy(policy(error_handlers=[{"on": [404, 404]}, {"on": [500]}]))


def test_retry_times_required_with_a_retry_handler() -> None:
    errors = errors_of(policy(error_handlers=[{"on": "any_error", "strategy": "retry"}]))
    assert errors == {"retry_times": ["must be set if some events are to be retried."]}


def test_retry_times_forbidden_when_all_discard() -> None:
    assert errors_of(policy(retry_times=3)) == {
        "retry_times": ["must not be set if all errors are discarded."]
    }


@pytest.mark.parametrize("retry_times", [0, 101])
def test_retry_times_range(retry_times: int) -> None:
    errors = errors_of(
        policy(retry_times=retry_times, error_handlers=[{"on": "any_error", "strategy": "retry"}])
    )
    assert errors == {"retry_times": ["is invalid"]}


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of({"name": "@x", "maximum_capacity": 0, "event_ttl": -1, "error_handlers": []})
    assert errors == {
        "name": ["has invalid format"],
        "maximum_capacity": ["is invalid"],
        "event_ttl": ["is invalid"],
        "error_handlers": ["can't be blank"],
    }


def test_not_an_object() -> None:
    assert errors_of([1]) == {"data": ["is invalid"]}


def test_decide_retries_covered_codes_until_retry_times_attempts() -> None:
    parsed = parse_policy(
        policy(
            retry_times=3,
            error_handlers=[
                {"on": "server_error", "strategy": "retry"},
                {"on": [404], "strategy": "discard"},
            ],
        )
    )
    assert parsed.decide(503, attempts=1) is Strategy.RETRY
    assert parsed.decide(500, attempts=2) is Strategy.RETRY
    assert parsed.decide(500, attempts=3) is Strategy.DISCARD  # three attempts in all
    assert parsed.decide(404, attempts=1) is Strategy.DISCARD
    assert parsed.decide(418, attempts=1) is Strategy.DISCARD  # no handler covers it


def test_default_policy_never_retries() -> None:
    assert DEFAULT_POLICY.name == "@default"
    assert DEFAULT_POLICY.maximum_capacity is None and DEFAULT_POLICY.event_ttl is None
    for code in (400, 404, 500, 503, 599):
        assert DEFAULT_POLICY.decide(code, attempts=1) is Strategy.DISCARD
