"""`open_storage` picks the backend from the URL's scheme and never repeats the URL."""

from __future__ import annotations

import pytest

from astraea.storage import open_storage


@pytest.mark.parametrize(
    "url",
    ["mysql://admin:s3cret@db/astraea", "postgresq://admin:s3cret@db/x", "/data/astraea.db", ""],
)
async def test_unknown_schemes_are_refused_without_echoing_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported storage URL scheme") as raised:
        await open_storage(url)
    assert "s3cret" not in str(raised.value)
    assert "sqlite:///absolute/path/to/file.db" in str(raised.value)
    assert "postgresql://user:password@host:port/database" in str(raised.value)
