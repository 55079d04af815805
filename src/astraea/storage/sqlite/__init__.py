"""SQLite backend, the embedded default of `astraea up`.

Layout decisions (the schema is `migrations/*.sql`; the connection settings are explained in
`connection`):
- Device data is keyed by (realm, device_id, ...) with the 16-byte binary device id, so a
  PostgreSQL backend can distribute the same tables by device without callers changing.
- Values are one BLOB holding the BSON document {"v": value} (objects: the object's BSON
  document). BSON keeps every Astarte type exact (int32 against int64, double against integer,
  binary, UTC datetime, typed arrays) where JSON or SQLite's own types would blur them; it is the
  form devices publish and triggers carry, so values move without re-encoding; and one column
  serves every mapping type. Queries filter and order on timestamps and paths, never on values.
- Instants are integer microseconds since the epoch: enough to order samples received within
  the same millisecond, and one unit everywhere.
- Every row belongs to a realm through ON DELETE CASCADE, so deleting a realm (or a device)
  cannot forget a table.
"""

from astraea.storage.sqlite.storage import SqliteStorage, open_sqlite_storage
from astraea.storage.sqlite.url import database_path

__all__ = ["SqliteStorage", "database_path", "open_sqlite_storage"]
