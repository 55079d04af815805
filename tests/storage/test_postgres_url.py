"""PostgreSQL storage URLs: what reaches the driver, Astraea's own parameters, and refusals
that never repeat the password."""

from __future__ import annotations

import pytest

from astraea.storage import open_storage
from astraea.storage.postgres import parse_postgres_url


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_both_schemes_name_a_database(scheme: str) -> None:
    target = parse_postgres_url(f"{scheme}://astraea:s3cret@db.example.com:6543/iot")

    assert target.dsn == f"{scheme}://astraea:s3cret@db.example.com:6543/iot"
    assert target.location == "db.example.com:6543/iot"
    assert (target.schema, target.pool_size) == (None, 10)


def test_schema_and_pool_size_are_astraeas_and_other_parameters_the_drivers() -> None:
    target = parse_postgres_url(
        "postgresql://u@127.0.0.1/test?sslmode=disable&schema=tenant_1&pool_size=3"
    )

    assert (target.schema, target.pool_size) == ("tenant_1", 3)
    assert target.dsn == "postgresql://u@127.0.0.1/test?sslmode=disable"
    assert target.location == "127.0.0.1:5432/test"


def test_the_password_stays_out_of_the_targets_repr() -> None:
    target = parse_postgres_url("postgresql://u:s3cret@db/test")

    assert "s3cret" not in repr(target)


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("schema=", "schema must be"),
        ("schema=1tenant", "schema must be"),
        ("schema=a-b", "schema must be"),
        ("schema=" + "x" * 64, "schema must be"),
        ('schema=a"b', "schema must be"),
        ("schema=a&schema=b", "more than once"),
        ("pool_size=0", "pool_size must be"),
        ("pool_size=101", "pool_size must be"),
        ("pool_size=ten", "pool_size must be"),
        ("pool_size=-1", "pool_size must be"),
    ],
)
async def test_unclear_parameters_are_refused_without_echoing_the_url(
    query: str, complaint: str
) -> None:
    url = f"postgresql://admin:s3cret@db/astraea?{query}"
    with pytest.raises(ValueError, match=complaint) as parsed:
        parse_postgres_url(url)
    with pytest.raises(ValueError, match=complaint) as opened:
        await open_storage(url)  # refused before any connection is tried
    assert "s3cret" not in str(parsed.value)
    assert "s3cret" not in str(opened.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://admin:s3cret@db:port/astraea",
        "postgresql://admin:s3cret@db/astraea#s3cret",
        "mysql://admin:s3cret@db/astraea",
    ],
)
def test_malformed_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_postgres_url(url)
    assert "s3cret" not in str(raised.value)
