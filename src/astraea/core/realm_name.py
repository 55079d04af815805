"""Realm names: they become database and message-bus names, hence the narrow alphabet."""

from __future__ import annotations

import re

_REALM_NAME = re.compile(r"[a-z][a-z0-9]{0,47}")
_RESERVED = frozenset({"astarte", "system"})


def is_valid_realm_name(name: str) -> bool:
    """Lowercase letter first, then up to 47 lowercase letters or digits; `astarte`, `system`
    and `system_*` are reserved for the platform."""
    return (
        _REALM_NAME.fullmatch(name) is not None
        and name not in _RESERVED
        and not name.startswith("system_")
    )
