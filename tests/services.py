"""External services the tests use, and the one rule for when one is missing.

A test that needs a service asks for it here. Under CI (CI=true) a missing service fails the
test, so a broken CI machine cannot pass by skipping; elsewhere it skips, naming the service
and where it was looked for.

PostgreSQL: 127.0.0.1:5432, trust authentication, database `test`, as user `postgres` or
`root` (the first that the server accepts). ASTRAEA_TEST_POSTGRES_URL overrides all of it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache
from typing import NoReturn
from urllib.parse import urlsplit

import asyncpg
import pytest

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DATABASE = "test"
POSTGRES_USERS = ("postgres", "root")


def unavailable(message: str) -> NoReturn:
    """Fails the test under CI, skips it elsewhere; never returns."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_port(service: str, host: str, port: int) -> None:
    """Passes when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        unavailable(f"{service} is not reachable at {host}:{port}")


def postgres_url() -> str:
    """The URL of the test database, without a schema (see `postgres_schema`)."""
    override = os.environ.get("ASTRAEA_TEST_POSTGRES_URL")
    if override:
        parts = urlsplit(override)
        require_port("PostgreSQL", parts.hostname or "localhost", parts.port or 5432)
        return override
    require_port("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    url = _accepted_url()
    if url is None:
        users = " or ".join(POSTGRES_USERS)
        unavailable(
            f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} accepts none of the users {users} "
            f"on database {POSTGRES_DATABASE!r}"
        )
    assert url is not None
    return url


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A storage URL on a fresh, randomly named schema of the test database, dropped (with
    everything in it) afterwards, so that tests never see each other's rows."""
    base = postgres_url()
    schema = f"test_{secrets.token_hex(6)}"
    separator = "&" if urlsplit(base).query else "?"
    try:
        yield f"{base}{separator}schema={schema}"
    finally:
        connection = await asyncpg.connect(base)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


@cache
def _accepted_url() -> str | None:
    """Tries the users in turn, once per test session. Runs on a thread of its own, since it
    may be called while an event loop is running."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, _first_accepted_url()).result()


async def _first_accepted_url() -> str | None:
    for user in POSTGRES_USERS:
        url = f"postgresql://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DATABASE}"
        try:
            connection = await asyncpg.connect(url, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            continue
        await connection.close()
        return url
    return None
