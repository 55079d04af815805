"""The form of PostgreSQL storage URLs: `postgresql://user:pass@host:port/dbname?schema=NAME`.

`postgres://` is accepted too. Two query parameters are Astraea's own and never reach the
driver: `schema` puts every table in that schema (created when missing), so several
installations, or tests, can share one database; `pool_size` caps the connections of one
process. Any other parameter (e.g. `sslmode`) is the driver's.

URLs may carry passwords, so no error raised here repeats the URL or any part of it that
could hold one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
DEFAULT_POOL_SIZE = 10
MAX_POOL_SIZE = 100
# Unquoted-identifier characters only, so the name never needs escaping in a message or a
# search_path, and at most PostgreSQL's 63-byte identifier length.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """Where to connect, and how."""

    dsn: str = field(repr=False)  # for the driver; may hold a password
    location: str  # host:port/dbname, safe to show
    schema: str | None
    pool_size: int


def parse_postgres_url(url: str) -> PostgresTarget:
    """The target a `postgresql:` URL names; ValueError when the URL is unclear."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("not a postgresql:// URL")
    if parts.fragment:
        raise ValueError("a postgresql URL has no fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port of the postgresql URL is not a number") from None
    schema: str | None = None
    pool_size = DEFAULT_POOL_SIZE
    seen: set[str] = set()
    driver_params = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in ("schema", "pool_size"):
            if name in seen:
                raise ValueError(f"the postgresql URL gives {name} more than once")
            seen.add(name)
        if name == "schema":
            schema = _schema(value)
        elif name == "pool_size":
            pool_size = _pool_size(value)
        else:
            driver_params.append((name, value))
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(driver_params), ""))
    location = f"{parts.hostname or 'localhost'}:{port or 5432}{parts.path or '/'}"
    return PostgresTarget(dsn=dsn, location=location, schema=schema, pool_size=pool_size)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _schema(value: str) -> str:
    if not _SCHEMA_NAME.fullmatch(value):
        raise ValueError(
            "schema must be 1 to 63 letters, digits or underscores, not starting with a digit"
        )
    return value


def _pool_size(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_POOL_SIZE:
        raise ValueError(f"pool_size must be a whole number from 1 to {MAX_POOL_SIZE}")
    return int(value)
