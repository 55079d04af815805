"""Persistent MQTT sessions in PostgreSQL: one row per session, its queue in position order.

Every read-then-write locks the session row first (`FOR UPDATE`), which serialises the
transports and API processes acting on one device as SQLite's single writer does.
"""

from __future__ import annotations

from astraea.core.sessions import SessionMessage, StoredSession
from astraea.storage.postgres.codec import from_json, raw_id, to_json
from astraea.storage.postgres.connection import Connection, Database, as_columns, changed

_OF_SESSION = "realm = $1 AND device_id = $2"

_INSERT_MESSAGES = """
INSERT INTO mqtt_session_messages (realm, device_id, position, topic, payload, qos, sent)
SELECT $1, $2, position, topic, payload, qos, sent
FROM unnest($3::bigint[], $4::text[], $5::bytea[], $6::smallint[], $7::boolean[])
    AS u (position, topic, payload, qos, sent)
"""


class PostgresSessionRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, realm: str, device_id: str) -> StoredSession | None:
        async with self._database.transaction() as connection:
            return await _session(connection, realm, raw_id(device_id), lock=False)

    async def take(self, realm: str, device_id: str, node: str) -> StoredSession | None:
        key = (realm, raw_id(device_id))
        async with self._database.transaction() as connection:
            session = await _session(connection, *key, lock=True)
            if session is None:
                return None
            await connection.execute(
                f"UPDATE mqtt_sessions SET owner = $3 WHERE {_OF_SESSION}", *key, node
            )
            await connection.execute(f"DELETE FROM mqtt_session_messages WHERE {_OF_SESSION}", *key)
        session.owner = node
        return session

    async def create(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> None:
        key = (realm, raw_id(device_id))
        async with self._database.transaction() as connection:
            await connection.execute(f"DELETE FROM mqtt_sessions WHERE {_OF_SESSION}", *key)
            await connection.execute(
                "INSERT INTO mqtt_sessions (realm, device_id, owner, subscriptions)"
                " VALUES ($1, $2, $3, $4)",
                *key,
                node,
                to_json(subscriptions),
            )

    async def save_subscriptions(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> bool:
        count = await self._database.execute(
            f"UPDATE mqtt_sessions SET subscriptions = $4 WHERE {_OF_SESSION} AND owner = $3",
            realm,
            raw_id(device_id),
            node,
            to_json(subscriptions),
        )
        return count > 0

    async def release(self, realm: str, device_id: str, node: str, session: StoredSession) -> bool:
        key = (realm, raw_id(device_id))
        async with self._database.transaction() as connection:
            status = await connection.execute(
                "UPDATE mqtt_sessions SET owner = NULL, subscriptions = $4, qos2_received = $5"
                f" WHERE {_OF_SESSION} AND owner = $3",
                *key,
                node,
                to_json(session.subscriptions),
                to_json(session.qos2_received),
            )
            if not changed(status):
                return False
            # Nothing is stored while a node owns the session, so the queue starts at 0.
            await _append(connection, key, 0, session.queued)
        return True

    async def enqueue(
        self, realm: str, device_id: str, message: SessionMessage, *, max_queued: int
    ) -> bool:
        key = (realm, raw_id(device_id))
        async with self._database.transaction() as connection:
            owner = await connection.fetchrow(
                f"SELECT owner FROM mqtt_sessions WHERE {_OF_SESSION} FOR UPDATE", *key
            )
            if owner is None or owner["owner"] is not None:
                return False
            last = await connection.fetchval(
                "SELECT coalesce(max(position), -1) FROM mqtt_session_messages"
                f" WHERE {_OF_SESSION}",
                *key,
            )
            position = int(last) + 1
            await _append(connection, key, position, [message])
            await connection.execute(
                f"DELETE FROM mqtt_session_messages WHERE {_OF_SESSION} AND position <= $3",
                *key,
                position - max_queued,
            )
        return True

    async def discard(self, realm: str, device_id: str) -> None:
        await self._database.execute(
            f"DELETE FROM mqtt_sessions WHERE {_OF_SESSION}", realm, raw_id(device_id)
        )

    async def release_node(self, node: str) -> int:
        return await self._database.execute(
            "UPDATE mqtt_sessions SET owner = NULL WHERE owner = $1", node
        )


async def _session(
    connection: Connection, realm: str, raw: bytes, *, lock: bool
) -> StoredSession | None:
    row = await connection.fetchrow(
        "SELECT owner, subscriptions, qos2_received FROM mqtt_sessions"
        f" WHERE {_OF_SESSION}" + (" FOR UPDATE" if lock else ""),
        realm,
        raw,
    )
    if row is None:
        return None
    messages = await connection.fetch(
        "SELECT topic, payload, qos, sent FROM mqtt_session_messages"
        f" WHERE {_OF_SESSION} ORDER BY position",
        realm,
        raw,
    )
    queued = [SessionMessage(m["topic"], m["payload"], m["qos"], m["sent"]) for m in messages]
    return StoredSession(
        row["owner"], from_json(row["subscriptions"]), queued, from_json(row["qos2_received"])
    )


async def _append(
    connection: Connection, key: tuple[str, bytes], first: int, messages: list[SessionMessage]
) -> None:
    if not messages:
        return
    rows = [(first + n, m.topic, m.payload, m.qos, m.sent) for n, m in enumerate(messages)]
    await connection.execute(_INSERT_MESSAGES, *key, *as_columns(rows, 5))
