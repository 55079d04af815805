"""Structured log messages as `key=value` pairs (logfmt), readable by people and by log
shippers alike."""

from __future__ import annotations

import json
from collections.abc import Mapping


def logfmt(fields: Mapping[str, object]) -> str:
    """`key=value` pairs; a value with spaces, quotes, `=` or control characters is quoted
    as JSON so that a client-chosen value (a request path) cannot forge fields or lines;
    None is `-`."""
    return " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def _value(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text
