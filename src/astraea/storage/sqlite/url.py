"""The form of SQLite storage URLs: `sqlite:///absolute/path/to/file.db`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


def database_path(url: str) -> Path:
    """The database file a `sqlite:` URL names; ValueError when the URL names none clearly."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r}")
    if parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"a sqlite URL is sqlite:///absolute/path/to/file.db, without host, query or "
            f"fragment: {url!r}"
        )
    path = Path(unquote(parts.path))
    if not path.is_absolute() or not path.name:
        raise ValueError(f"a sqlite URL must name a file by its absolute path: {url!r}")
    return path
