"""Persistent MQTT sessions in SQLite: one row per session, its queue in position order."""

from __future__ import annotations

import json
import sqlite3

from astraea.core.device_id import decode_device_id
from astraea.core.sessions import SessionMessage, StoredSession
from astraea.storage.sqlite.connection import Database, fetch_one

_Key = tuple[str, bytes]

_MESSAGES = (
    "SELECT topic, payload, qos, sent FROM mqtt_session_messages"
    " WHERE realm = ? AND device_id = ? ORDER BY position"
)
_INSERT_MESSAGE = (
    "INSERT INTO mqtt_session_messages (realm, device_id, position, topic, payload, qos, sent)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqliteSessionRepository:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def get(self, realm: str, device_id: str) -> StoredSession | None:
        key = (realm, decode_device_id(device_id))

        def read(connection: sqlite3.Connection) -> StoredSession | None:
            return _session(connection, key)

        return await self._database.run(read)

    async def take(self, realm: str, device_id: str, node: str) -> StoredSession | None:
        key = (realm, decode_device_id(device_id))

        def take(connection: sqlite3.Connection) -> StoredSession | None:
            session = _session(connection, key)
            if session is None:
                return None
            connection.execute(
                "UPDATE mqtt_sessions SET owner = ? WHERE realm = ? AND device_id = ?",
                (node, *key),
            )
            connection.execute(
                "DELETE FROM mqtt_session_messages WHERE realm = ? AND device_id = ?", key
            )
            session.owner = node
            return session

        return await self._database.run(take)

    async def create(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> None:
        key = (realm, decode_device_id(device_id))

        def create(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM mqtt_sessions WHERE realm = ? AND device_id = ?", key)
            connection.execute(
                "INSERT INTO mqtt_sessions (realm, device_id, owner, subscriptions)"
                " VALUES (?, ?, ?, ?)",
                (*key, node, json.dumps(subscriptions)),
            )

        await self._database.run(create)

    async def save_subscriptions(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> bool:
        changed = await self._database.execute(
            "UPDATE mqtt_sessions SET subscriptions = ?"
            " WHERE realm = ? AND device_id = ? AND owner = ?",
            (json.dumps(subscriptions), realm, decode_device_id(device_id), node),
        )
        return changed > 0

    async def release(self, realm: str, device_id: str, node: str, session: StoredSession) -> bool:
        key = (realm, decode_device_id(device_id))
        subscriptions, queued = json.dumps(session.subscriptions), session.queued
        qos2_received = json.dumps(session.qos2_received)

        def release(connection: sqlite3.Connection) -> bool:
            changed = connection.execute(
                "UPDATE mqtt_sessions SET owner = NULL, subscriptions = ?, qos2_received = ?"
                " WHERE realm = ? AND device_id = ? AND owner = ?",
                (subscriptions, qos2_received, *key, node),
            ).rowcount
            if not changed:
                return False
            # Nothing is stored while a node owns the session, so the queue starts at 0.
            connection.executemany(
                _INSERT_MESSAGE,
                [(*key, n, m.topic, m.payload, m.qos, m.sent) for n, m in enumerate(queued)],
            )
            return True

        return await self._database.run(release)

    async def enqueue(
        self, realm: str, device_id: str, message: SessionMessage, *, max_queued: int
    ) -> bool:
        key = (realm, decode_device_id(device_id))

        def enqueue(connection: sqlite3.Connection) -> bool:
            row = fetch_one(
                connection,
                "SELECT owner FROM mqtt_sessions WHERE realm = ? AND device_id = ?",
                key,
            )
            if row is None or row["owner"] is not None:
                return False
            last = fetch_one(
                connection,
                "SELECT coalesce(max(position), -1) FROM mqtt_session_messages"
                " WHERE realm = ? AND device_id = ?",
                key,
            )
            position = (-1 if last is None else int(last[0])) + 1
            connection.execute(
                _INSERT_MESSAGE,
                (*key, position, message.topic, message.payload, message.qos, message.sent),
            )
            connection.execute(
                "DELETE FROM mqtt_session_messages"
                " WHERE realm = ? AND device_id = ? AND position <= ?",
                (*key, position - max_queued),
            )
            return True

        return await self._database.run(enqueue)

    async def discard(self, realm: str, device_id: str) -> None:
        await self._database.execute(
            "DELETE FROM mqtt_sessions WHERE realm = ? AND device_id = ?",
            (realm, decode_device_id(device_id)),
        )

    async def release_node(self, node: str) -> int:
        return await self._database.execute(
            "UPDATE mqtt_sessions SET owner = NULL WHERE owner = ?", (node,)
        )


def _session(connection: sqlite3.Connection, key: _Key) -> StoredSession | None:
    row = fetch_one(
        connection,
        "SELECT owner, subscriptions, qos2_received FROM mqtt_sessions"
        " WHERE realm = ? AND device_id = ?",
        key,
    )
    if row is None:
        return None
    queued = [
        SessionMessage(topic, payload, qos, bool(sent))
        for topic, payload, qos, sent in connection.execute(_MESSAGES, key)
    ]
    subscriptions = json.loads(row["subscriptions"])
    return StoredSession(row["owner"], subscriptions, queued, json.loads(row["qos2_received"]))
