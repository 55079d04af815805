"""Astarte authorization claims: lists of `METHOD_REGEX:opts:PATH_REGEX` strings.

Both regexes are anchored (full match). Entries that are malformed or hold an invalid regex
are skipped, as Astarte does, so one bad entry never widens or blocks the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class _Rule:
    method: re.Pattern[str]
    path: re.Pattern[str]


@lru_cache(maxsize=4096)
def _compile(entry: str) -> _Rule | None:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        return None
    method_regex, _opts, path_regex = parts
    try:
        return _Rule(re.compile(method_regex), re.compile(path_regex))
    except re.error:
        return None


def claim_allows(claim: object, method: str, auth_path: str) -> bool:
    """Whether any entry of a claim value grants `method` on `auth_path`.

    A claim that is not a list of strings grants nothing.
    """
    if not isinstance(claim, list):
        return False
    for entry in claim:
        if not isinstance(entry, str):
            continue
        rule = _compile(entry)
        if rule and rule.method.fullmatch(method) and rule.path.fullmatch(auth_path):
            return True
    return False


def auth_path(segments: Iterable[str]) -> str:
    """The path a claim regex sees: segments joined by `/`, empty segments dropped."""
    return "/".join(s for s in segments if s)
