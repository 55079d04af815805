"""Trigger delivery policies: validation, rendering, and the retry-or-discard decision.

A policy owns one durable event queue: its capacity, its events' TTL, how many deliveries run at
once, and which HTTP error codes are retried. Validation follows Astarte's policy changeset, so
`PolicyValidationError.errors` can be returned as a 422 body's `errors`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from astraea.core.trigger_actions import FieldReader

DEFAULT_POLICY_NAME = "@default"
NAME_MAX_LENGTH = 128
MAX_ERROR_HANDLERS = 200
RETRY_TIMES_RANGE = (1, 100)
MAXIMUM_CAPACITY_RANGE = (1, 1_000_000)
EVENT_TTL_RANGE = (1, 86_400)
PREFETCH_COUNT_RANGE = (1, 300)
ERROR_CODES_RANGE = (400, 599)
# Without `prefetch_count` one event is in flight at a time, which keeps the queue's order.
DEFAULT_PREFETCH_COUNT = 1

# `@` names are reserved (`@default` is the implicit policy); `.` stops at a newline.
_NAME = re.compile(r"(?!@).+")


class PolicyValidationError(ValueError):
    """The document is not a valid policy; `errors` maps each field to its messages.

    Handler errors nest as in Ecto's embeds: `error_handlers` holds one dict per handler.
    """

    def __init__(self, errors: dict[str, list[Any]]) -> None:
        super().__init__(f"invalid trigger policy: {errors}")
        self.errors = errors


class ErrorKeyword(enum.StrEnum):
    ANY_ERROR = "any_error"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"

    @property
    def codes(self) -> range:
        low, high = {
            ErrorKeyword.ANY_ERROR: (400, 599),
            ErrorKeyword.CLIENT_ERROR: (400, 499),
            ErrorKeyword.SERVER_ERROR: (500, 599),
        }[self]
        return range(low, high + 1)


class Strategy(enum.StrEnum):
    DISCARD = "discard"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class ErrorHandler:
    on: ErrorKeyword | tuple[int, ...]
    strategy: Strategy = Strategy.DISCARD

    @property
    def codes(self) -> range | tuple[int, ...]:
        return self.on.codes if isinstance(self.on, ErrorKeyword) else self.on

    def covers(self, code: int) -> bool:
        return code in self.codes


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    maximum_capacity: int | None  # None only for the implicit @default: unbounded
    error_handlers: tuple[ErrorHandler, ...]
    retry_times: int | None = None
    event_ttl: int | None = None  # seconds
    prefetch_count: int | None = None

    @property
    def effective_prefetch_count(self) -> int:
        return self.prefetch_count or DEFAULT_PREFETCH_COUNT

    def decide(self, code: int, attempts: int) -> Strategy:
        """What to do after attempt number `attempts` (1-based) failed with `code`.

        As in Astarte, `retry_times` bounds the total attempts: an event is retried only while
        fewer than `retry_times` attempts were made and a `retry` handler covers the code.
        """
        for handler in self.error_handlers:
            if handler.covers(code):
                if (
                    handler.strategy is Strategy.RETRY
                    and self.retry_times is not None
                    and attempts < self.retry_times
                ):
                    return Strategy.RETRY
                return Strategy.DISCARD
        return Strategy.DISCARD


# Astarte's implicit policy for triggers without one: one attempt, any error discards.
DEFAULT_POLICY = Policy(
    name=DEFAULT_POLICY_NAME,
    maximum_capacity=None,
    error_handlers=(ErrorHandler(ErrorKeyword.ANY_ERROR),),
)


def parse_policy(obj: object) -> Policy:
    """Validates a policy document (the `data` member of a Realm Management request)."""
    if not isinstance(obj, dict):
        raise PolicyValidationError({"data": ["is invalid"]})
    fields = FieldReader(obj)
    name = fields.text("name", required=True)
    if name is not None:
        if len(name) > NAME_MAX_LENGTH:
            fields.add("name", f"should be at most {NAME_MAX_LENGTH} character(s)")
        if not _NAME.fullmatch(name):
            fields.add("name", "has invalid format")
    retry_times = fields.integer_in("retry_times", *RETRY_TIMES_RANGE)
    event_ttl = fields.integer_in("event_ttl", *EVENT_TTL_RANGE)
    capacity = fields.integer_in("maximum_capacity", *MAXIMUM_CAPACITY_RANGE, required=True)
    prefetch_count = fields.integer_in("prefetch_count", *PREFETCH_COUNT_RANGE)
    errors: dict[str, list[Any]] = dict(fields.errors)
    handlers = _handlers(obj.get("error_handlers"), errors)
    if handlers is not None:
        _check_handlers(handlers, retry_times, errors)
    if errors or name is None or capacity is None or handlers is None:
        raise PolicyValidationError(errors)
    return Policy(
        name=name,
        maximum_capacity=capacity,
        error_handlers=handlers,
        retry_times=retry_times,
        event_ttl=event_ttl,
        prefetch_count=prefetch_count,
    )


def policy_to_json(policy: Policy) -> dict[str, object]:
    """The form Realm Management renders; unset optional integers render as null.

    `parse_policy(policy_to_json(p)) == p` for every installable policy, so the rendered form
    is also the stored one.
    """
    return {
        "name": policy.name,
        "maximum_capacity": policy.maximum_capacity,
        "retry_times": policy.retry_times,
        "event_ttl": policy.event_ttl,
        "prefetch_count": policy.prefetch_count,
        "error_handlers": [
            {
                "on": str(handler.on) if isinstance(handler.on, ErrorKeyword) else list(handler.on),
                "strategy": str(handler.strategy),
            }
            for handler in policy.error_handlers
        ],
    }


def _handlers(value: object, errors: dict[str, list[Any]]) -> tuple[ErrorHandler, ...] | None:
    if value is None or value == []:
        errors["error_handlers"] = ["can't be blank"]
        return None
    if not isinstance(value, list):
        errors["error_handlers"] = ["is invalid"]
        return None
    if len(value) > MAX_ERROR_HANDLERS:
        errors["error_handlers"] = [f"should have at most {MAX_ERROR_HANDLERS} item(s)"]
        return None
    parsed: list[ErrorHandler] = []
    per_handler: list[dict[str, list[str]]] = []
    for item in value:
        handler, handler_errors = _handler(item)
        per_handler.append(handler_errors)
        if handler is not None:
            parsed.append(handler)
    if any(per_handler):
        errors["error_handlers"] = list(per_handler)
        return None
    return tuple(parsed)


def _handler(item: object) -> tuple[ErrorHandler | None, dict[str, list[str]]]:
    if not isinstance(item, dict):
        return None, {"on": ["is invalid"]}
    fields = FieldReader(item)
    on = _error_type(fields)
    strategy: Strategy | None = Strategy.DISCARD
    if "strategy" in item:
        text = fields.text("strategy", required=True)
        strategy = Strategy(text) if text in tuple(Strategy) else None
        if text is not None and strategy is None:
            fields.add("strategy", "is invalid")
    if fields.errors or on is None or strategy is None:
        return None, fields.errors
    return ErrorHandler(on, strategy), {}


def _error_type(fields: FieldReader) -> ErrorKeyword | tuple[int, ...] | None:
    value = fields.source.get("on")
    if value is None or value == "":
        fields.add("on", "can't be blank")
        return None
    if isinstance(value, str) and value in tuple(ErrorKeyword):
        return ErrorKeyword(value)
    low, high = ERROR_CODES_RANGE
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(code, int) and not isinstance(code, bool) and low <= code <= high
            for code in value
        )
    ):
        return tuple(value)
    fields.add("on", "is invalid")
    return None


def _check_handlers(
    handlers: tuple[ErrorHandler, ...], retry_times: int | None, errors: dict[str, list[Any]]
) -> None:
    seen: set[int] = set()
    for handler in handlers:
        codes = set(handler.codes)
        if not seen.isdisjoint(codes):
            errors.setdefault("error_handlers", []).append("must all handle distinct errors.")
            break
        seen |= codes
    all_discard = all(handler.strategy is Strategy.DISCARD for handler in handlers)
    if all_discard and retry_times is not None:
        errors.setdefault("retry_times", []).append("must not be set if all errors are discarded.")
    if not all_discard and retry_times is None:
        errors.setdefault("retry_times", []).append("must be set if some events are to be retried.")
