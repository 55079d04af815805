"""The PostgreSQL pool: schema and session settings, pool size, isolation, cancellation,
connection failures that never repeat the password."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import pytest
from tests.services import postgres_schema, postgres_url

from astraea.storage import open_storage
from astraea.storage.base import Realm, StorageError
from astraea.storage.postgres import parse_postgres_url
from astraea.storage.postgres.connection import connect

EXPECTED_TABLES = {
    "schema_version",
    "realms",
    "interfaces",
    "devices",
    "device_deletions",
    "device_interfaces",
    "device_aliases",
    "device_attributes",
    "group_members",
    "individual_properties",
    "individual_datastreams",
    "object_datastreams",
    "datastream_paths",
    "trigger_policies",
    "triggers",
    "simple_triggers",
    "trigger_deliveries",
    "transport_nodes",
    "mqtt_sessions",
    "mqtt_session_messages",
    "trigger_queue_leases",
}


async def test_every_table_goes_into_the_urls_schema(
    postgres_schema_url: str, postgres_admin: asyncpg.Connection
) -> None:
    schema = parse_postgres_url(postgres_schema_url).schema
    storage = await open_storage(postgres_schema_url)
    await storage.close()

    rows = await postgres_admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    assert {row["table_name"] for row in rows} == EXPECTED_TABLES


async def test_storages_on_two_schemas_do_not_see_each_other(postgres_schema_url: str) -> None:
    first = await open_storage(postgres_schema_url)
    try:
        await first.realms.create(Realm(name="mine", jwt_public_key_pem="pem"))
        async with postgres_schema() as other_url:
            second = await open_storage(other_url)
            try:
                assert await second.realms.list_names() == []
                await second.realms.create(Realm(name="mine", jwt_public_key_pem="other"))
            finally:
                await second.close()
        stored = await first.realms.get("mine")
        assert stored is not None and stored.jwt_public_key_pem == "pem"
    finally:
        await first.close()


async def test_connections_carry_the_schema_and_astraeas_name(postgres_schema_url: str) -> None:
    target = parse_postgres_url(postgres_schema_url)
    database = await connect(target)
    try:
        assert await database.fetchval("SHOW search_path") == f'"{target.schema}"'
        assert await database.fetchval("SHOW application_name") == "astraea"
    finally:
        await database.close()


async def test_the_pool_never_opens_more_than_pool_size_connections(
    postgres_schema_url: str,
) -> None:
    database = await connect(parse_postgres_url(postgres_schema_url + "&pool_size=2"))
    try:
        rows = await asyncio.gather(
            *(database.fetchrow("SELECT pg_backend_pid(), pg_sleep(0.05)") for _ in range(6))
        )
    finally:
        await database.close()

    assert len({row[0] for row in rows if row is not None}) == 2


async def test_readers_never_see_a_transaction_that_rolls_back(postgres_schema_url: str) -> None:
    storage = await open_storage(postgres_schema_url)
    database = await connect(parse_postgres_url(postgres_schema_url))
    written = asyncio.Event()

    async def failing_writer() -> None:
        async with database.transaction() as connection:
            await connection.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class)"
                " VALUES ('phantom', 'pem', 'S')"
            )
            written.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("abandoned")

    async def reader() -> list[str]:
        await written.wait()
        return await storage.realms.list_names()

    try:
        writer_result, names = await asyncio.gather(
            failing_writer(), reader(), return_exceptions=True
        )
        assert isinstance(writer_result, RuntimeError)
        assert names == []
        assert await storage.realms.list_names() == []
    finally:
        await database.close()
        await storage.close()


async def test_a_cancelled_transaction_rolls_back_and_frees_the_connection(
    postgres_schema_url: str,
) -> None:
    storage = await open_storage(postgres_schema_url)
    # One connection: were it not given back, the next transaction would wait forever.
    database = await connect(parse_postgres_url(postgres_schema_url + "&pool_size=1"))
    inside = asyncio.Event()

    async def stalled_writer() -> None:
        async with database.transaction() as connection:
            await connection.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class)"
                " VALUES ('phantom', 'pem', 'S')"
            )
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stalled_writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    try:
        async with asyncio.timeout(5), database.transaction() as connection:
            await connection.execute(
                "INSERT INTO realms (name, jwt_public_key_pem, replication_class)"
                " VALUES ('real', 'pem', 'S')"
            )
        assert await storage.realms.list_names() == ["real"]
    finally:
        await database.close()
        await storage.close()


async def test_closing_twice_is_harmless(postgres_schema_url: str) -> None:
    storage = await open_storage(postgres_schema_url)

    await storage.close()
    await storage.close()


async def test_an_unreachable_server_is_reported_without_the_password() -> None:
    # Port 1 on the loopback: nothing listens there.
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1/test") as raised:
        await open_storage("postgresql://astraea:s3cret@127.0.0.1:1/test")

    _assert_hidden("s3cret", raised.value)


async def test_a_missing_database_is_reported_without_the_password() -> None:
    server = urlsplit(postgres_url())
    url = f"postgresql://{server.username}:s3cret@{server.netloc.rpartition('@')[2]}/astraea_no_such_database"

    with pytest.raises(StorageError, match="astraea_no_such_database") as raised:
        await open_storage(url)

    _assert_hidden("s3cret", raised.value)


def _assert_hidden(secret: str, error: BaseException) -> None:
    """Neither the error nor anything chained to it (which tracebacks print) holds it."""
    assert secret not in str(error)
    assert error.__cause__ is None and error.__context__ is None
