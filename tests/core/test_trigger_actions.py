"""Trigger actions: Astarte's HTTP and AMQP action rules, normalization and rendering."""

from __future__ import annotations

import pytest

from astraea.core.trigger_actions import (
    ActionValidationError,
    AmqpAction,
    HttpAction,
    action_to_json,
    parse_action,
)

REALM = "test"


def errors_of(doc: object, realm: str = REALM) -> dict[str, list[str]]:
    with pytest.raises(ActionValidationError) as caught:
        parse_action(doc, realm=realm)
    return caught.value.errors


def amqp(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "amqp_exchange": f"astarte_events_{REALM}_exchange",
        "amqp_routing_key": "rk",
        "amqp_message_expiration_ms": 1000,
        "amqp_message_persistent": True,
    }
    doc.update(overrides)
    return {key: value for key, value in doc.items() if value is not ...}


# --- HTTP -----------------------------------------------------------------------------------


def test_minimal_http_action_renders_normalized() -> None:
    action = parse_action(
        {"http_url": "https://example.com/hook", "http_method": "post"}, realm=REALM
    )
    assert action == HttpAction(url="https://example.com/hook", method="post")
    assert action_to_json(action) == {
        "http_url": "https://example.com/hook",
        "http_method": "post",
        "ignore_ssl_errors": False,
    }


def test_full_http_action_round_trips() -> None:
    doc = {
        "http_url": "http://example.com/hook",
        "http_method": "put",
        "http_static_headers": {"Authorization": "Bearer x", "X-Custom": "1"},
        "ignore_ssl_errors": True,
        "template": "{{ device_id }}",
        "template_type": "mustache",
    }
    action = parse_action(doc, realm=REALM)
    assert isinstance(action, HttpAction)
    assert action.uses_mustache
    assert action.static_headers == (("Authorization", "Bearer x"), ("X-Custom", "1"))
    assert action_to_json(action) == doc
    assert parse_action(action_to_json(action), realm=REALM) == action


def test_legacy_post_url_becomes_post() -> None:
    action = parse_action({"http_post_url": "https://example.com/x"}, realm=REALM)
    assert action_to_json(action) == {
        "http_url": "https://example.com/x",
        "http_method": "post",
        "ignore_ssl_errors": False,
    }


def test_legacy_post_url_refuses_new_keys() -> None:
    errors = errors_of(
        {
            "http_post_url": "https://example.com/x",
            "http_url": "https://a.com/b",
            "http_method": "get",
        }
    )
    assert errors == {"http_url": ["must be blank"], "http_method": ["must be blank"]}


@pytest.mark.parametrize("method", ["delete", "get", "head", "options", "patch", "post", "put"])
def test_every_lowercase_method_is_accepted(method: str) -> None:
    action = parse_action({"http_url": "https://example.com/x", "http_method": method}, realm=REALM)
    assert isinstance(action, HttpAction) and action.method == method


@pytest.mark.parametrize("method", ["POST", "connect", "trace", ""])
def test_other_methods_are_refused(method: str) -> None:
    errors = errors_of({"http_url": "https://example.com/x", "http_method": method})
    expected = "can't be blank" if method == "" else "is invalid"
    assert errors == {"http_method": [expected]}


@pytest.mark.parametrize(
    ("url", "messages"),
    [
        ("ftp://example.com/x", ["must be a valid http(s) URL"]),
        ("http://", ["should be at least 8 character(s)", "must be a valid http(s) URL"]),
        ("http:///path/only", ["must be a valid http(s) URL"]),
        ("example.com/hook", ["must be a valid http(s) URL"]),
        ("http://" + "a" * 8190, ["should be at most 8192 character(s)"]),
    ],
)
def test_url_rules(url: str, messages: list[str]) -> None:
    assert errors_of({"http_url": url, "http_method": "post"}) == {"http_url": messages}


def test_missing_method_and_wrong_types() -> None:
    errors = errors_of({"http_url": 5, "ignore_ssl_errors": "yes"})
    assert errors == {
        "http_url": ["is invalid"],
        "http_method": ["can't be blank"],
        "ignore_ssl_errors": ["is invalid"],
    }


@pytest.mark.parametrize(
    "name", ["Host", " content-length ", "CONNECTION", "X-Forwarded-For", "proxy-authorization"]
)
def test_forbidden_static_headers(name: str) -> None:
    errors = errors_of(
        {
            "http_url": "https://example.com/x",
            "http_method": "post",
            "http_static_headers": {name: "v"},
        }
    )
    assert errors == {"http_static_headers": ["must contain only allowed http headers"]}


def test_static_headers_total_size_is_below_8192() -> None:
    base = {"http_url": "https://example.com/x", "http_method": "post"}
    # "X: " + value: 3 + 8188 = 8191 fits, one more byte does not.
    parse_action({**base, "http_static_headers": {"X": "v" * 8188}}, realm=REALM)
    errors = errors_of({**base, "http_static_headers": {"X": "v" * 8189}})
    assert errors == {"http_static_headers": ["headers total size must be lower than 8192"]}


def test_static_header_values_must_be_strings() -> None:
    errors = errors_of(
        {
            "http_url": "https://example.com/x",
            "http_method": "post",
            "http_static_headers": {"a": 1},
        }
    )
    assert errors == {"http_static_headers": ["is invalid"]}


def test_template_is_at_most_one_mebibyte() -> None:
    base = {"http_url": "https://example.com/x", "http_method": "post", "template_type": "mustache"}
    parse_action({**base, "template": "x" * 1024 * 1024}, realm=REALM)
    assert errors_of({**base, "template": "x" * (1024 * 1024 + 1)}) == {
        "template": ["should be at most 1048576 character(s)"]
    }


@pytest.mark.parametrize("doc", [{}, {"foo": "bar"}, [], "http://x", None])
def test_unclassifiable_action(doc: object) -> None:
    assert errors_of(doc) == {"action": ["is invalid"]}


# --- AMQP -----------------------------------------------------------------------------------


def test_minimal_amqp_action() -> None:
    action = parse_action(amqp(), realm=REALM)
    assert action == AmqpAction(
        exchange="astarte_events_test_exchange",
        routing_key="rk",
        message_expiration_ms=1000,
        message_persistent=True,
    )
    assert action_to_json(action) == amqp()


def test_full_amqp_action_round_trips() -> None:
    doc = amqp(
        amqp_message_priority=9, amqp_static_headers={"k": "v"}, amqp_message_persistent=False
    )
    action = parse_action(doc, realm=REALM)
    assert isinstance(action, AmqpAction)
    assert action.message_priority == 9 and action.static_headers == (("k", "v"),)
    assert action_to_json(action) == doc


def test_amqp_classification_wins_over_http_keys() -> None:
    assert isinstance(parse_action(amqp(http_url="https://example.com/x"), realm=REALM), AmqpAction)


@pytest.mark.parametrize(
    "exchange",
    [
        "astarte_events_other_exchange",  # another realm's
        "astarte_events_test_",  # empty suffix
        "astarte_events_test_bad-char",
        "events_test_x",
        "astarte_events_testx",
    ],
)
def test_exchange_name_rule(exchange: str) -> None:
    assert errors_of(amqp(amqp_exchange=exchange)) == {"amqp_exchange": ["has invalid format"]}


def test_exchange_name_allows_dots_colons_underscores() -> None:
    parse_action(amqp(amqp_exchange="astarte_events_test_a.b:c_D9"), realm=REALM)


def test_exchange_realm_is_matched_literally() -> None:
    # A realm is lowercase letters and digits, but the pattern must not treat it as a regex.
    errors = errors_of(amqp(amqp_exchange="astarte_events_aXb_x"), realm="a.b")
    assert errors == {"amqp_exchange": ["has invalid format"]}


def test_exchange_and_routing_key_at_most_255_bytes() -> None:
    long_exchange = "astarte_events_test_" + "x" * 236
    errors = errors_of(amqp(amqp_exchange=long_exchange, amqp_routing_key="é" * 128))
    assert errors == {
        "amqp_exchange": ["should be at most 255 byte(s)"],
        "amqp_routing_key": ["should be at most 255 byte(s)"],
    }


@pytest.mark.parametrize("key", ["a{b", "}", "{}"])
def test_routing_key_without_braces(key: str) -> None:
    assert errors_of(amqp(amqp_routing_key=key)) == {"amqp_routing_key": ["has invalid format"]}


def test_required_amqp_fields() -> None:
    errors = errors_of(
        amqp(amqp_routing_key=..., amqp_message_expiration_ms=..., amqp_message_persistent=...)
    )
    assert errors == {
        "amqp_routing_key": ["can't be blank"],
        "amqp_message_expiration_ms": ["can't be blank"],
        "amqp_message_persistent": ["can't be blank"],
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"amqp_message_expiration_ms": 0},
            {"amqp_message_expiration_ms": ["must be greater than 0"]},
        ),
        ({"amqp_message_expiration_ms": 1.5}, {"amqp_message_expiration_ms": ["is invalid"]}),
        ({"amqp_message_priority": 10}, {"amqp_message_priority": ["is invalid"]}),
        ({"amqp_message_priority": -1}, {"amqp_message_priority": ["is invalid"]}),
        ({"amqp_message_persistent": "true"}, {"amqp_message_persistent": ["is invalid"]}),
    ],
)
def test_amqp_numbers(overrides: dict[str, object], expected: dict[str, list[str]]) -> None:
    assert errors_of(amqp(**overrides)) == expected


def test_amqp_static_headers_total_size_is_below_65536() -> None:
    parse_action(amqp(amqp_static_headers={"k": "v" * 65534}), realm=REALM)
    assert errors_of(amqp(amqp_static_headers={"k": "v" * 65535})) == {
        "amqp_static_headers": ["headers total size must be lower than 65536"]
    }
