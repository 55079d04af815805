"""Storage: repository interfaces (`base`) and one package per backend."""

from __future__ import annotations

from urllib.parse import urlsplit

from astraea.storage.base import Storage
from astraea.storage.postgres import SCHEMES as POSTGRES_SCHEMES
from astraea.storage.postgres import open_postgres_storage, parse_postgres_url
from astraea.storage.sqlite import database_path, open_sqlite_storage


async def open_storage(url: str) -> Storage:
    """Opens the backend named by the URL's scheme, e.g. `sqlite:///var/lib/astraea/astraea.db`
    or `postgresql://astraea:secret@db.example.com:5432/astraea?schema=prod`.

    Error messages name only the scheme: URLs may carry passwords.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return await open_sqlite_storage(database_path(url))
    if scheme in POSTGRES_SCHEMES:
        return await open_postgres_storage(parse_postgres_url(url))
    raise ValueError(
        f"unsupported storage URL scheme {scheme or '(none)'!r}: expected "
        "sqlite:///absolute/path/to/file.db or postgresql://user:password@host:port/database"
    )
