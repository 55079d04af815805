"""PostgreSQL backend, for installations that outgrow one SQLite file.

It stores exactly what the SQLite backend stores, in the same layout (the schema is
`migrations/*.sql`; the pool and isolation are explained in `connection`):
- Device data is keyed by (realm, device_id, ...) with the 16-byte binary device id (bytea),
  so the tables can be distributed by (realm, device_id), e.g. with Citus.
- Values are one bytea holding the BSON document {"v": value} (objects: the object's BSON
  document): exact for every Astarte type, the form devices publish and triggers carry, one
  column for every mapping type. Queries filter and order on timestamps and paths, never on
  values.
- Instants are bigint microseconds since the epoch, as in SQLite: one unit everywhere, fine
  enough to order samples received within the same millisecond, and no time zone handling in
  the driver.
- Documents are JSON text rather than jsonb: nothing queries inside them, and jsonb would
  re-order their keys.
- Every row belongs to a realm through ON DELETE CASCADE, so deleting a realm (or a device)
  cannot forget a table.
"""

from astraea.storage.postgres.storage import PostgresStorage, open_postgres_storage
from astraea.storage.postgres.url import SCHEMES, PostgresTarget, parse_postgres_url

__all__ = [
    "SCHEMES",
    "PostgresStorage",
    "PostgresTarget",
    "open_postgres_storage",
    "parse_postgres_url",
]
