"""Collects per-field validation messages into Astarte's 422 `errors` shape."""

from __future__ import annotations

from typing import Any

from astraea.api.errors import ValidationFailed

_MISSING = object()


class Changeset:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def required_string(self, field: str) -> str | None:
        value = self.data.get(field, _MISSING)
        if value is _MISSING or value is None or value == "":
            self.add(field, "can't be blank")
            return None
        if not isinstance(value, str):
            self.add(field, "is invalid")
            return None
        return value

    def optional_int(self, field: str, *, minimum: int) -> int | None:
        """An integer ≥ minimum, or None when absent or null."""
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.add(field, "is invalid")
            return None
        if value < minimum:
            if minimum == 1:
                self.add(field, "must be greater than 0")
            else:
                self.add(field, f"must be greater than or equal to {minimum}")
            return None
        return value

    def raise_if_invalid(self) -> None:
        if self.errors:
            raise ValidationFailed(dict(self.errors))
