"""SQLite storage URLs, and what opening one checks before touching the disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from astraea.storage import open_storage
from astraea.storage.base import StorageError
from astraea.storage.sqlite import database_path


def test_sqlite_url_names_an_absolute_file() -> None:
    assert database_path("sqlite:///var/lib/astraea/astraea.db") == Path(
        "/var/lib/astraea/astraea.db"
    )
    assert database_path("sqlite:///data/my%20files/a.db") == Path("/data/my files/a.db")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://relative.db",  # a host, not a path
        "sqlite:relative.db",
        "sqlite:///",
        "sqlite:///data/a.db?mode=ro",
        "sqlite:///data/a.db#x",
    ],
)
def test_unclear_sqlite_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        database_path(url)


async def test_a_missing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder does not exist"):
        await open_storage(f"sqlite://{tmp_path}/missing/astraea.db")
    assert not (tmp_path / "missing").exists()


async def test_an_sqlite_without_strict_tables_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))

    with pytest.raises(StorageError, match=r"SQLite 3\.37\.0 or newer"):
        await open_storage(f"sqlite://{tmp_path}/astraea.db")
    assert list(tmp_path.iterdir()) == []
