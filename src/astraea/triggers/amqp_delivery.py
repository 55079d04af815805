"""AMQP 0-9-1 actions: publish the protobuf `SimpleEvent` to the action's exchange.

As in Astarte the exchange is declared `direct` and durable before the first publish, and the
message carries the `x_astarte_*` headers, the action's static headers, expiration, priority
and persistence. Messages are not `mandatory`: with no queue bound the broker drops them, as
it does for Astarte. Astarte publishes into a per-realm vhost; here every realm shares the
vhost of `--amqp-url`, since creating vhosts needs RabbitMQ's management API.

Publishes wait for the broker's confirmation, so "delivered" means the broker has the message.
Any failure drops the connection (a channel error closes the channel anyway) and the next
publish reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import timedelta

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from astraea.core.trigger_actions import AmqpAction
from astraea.core.trigger_events import SimpleEvent, event_type

PUBLISH_FAILED = 503

_FAILURES = (TimeoutError, aio_pika.exceptions.AMQPError, OSError)


def amqp_headers(action: AmqpAction, event: SimpleEvent) -> dict[str, str]:
    headers = {
        "x_astarte_realm": event.realm,
        "x_astarte_device_id": event.device_id,
        "x_astarte_simple_trigger_id": str(event.simple_trigger_id),
        "x_astarte_parent_trigger_id": str(event.parent_trigger_id),
        "x_astarte_event_type": event_type(event.event),
    }
    headers.update(action.static_headers)
    return headers


def message_id(event: SimpleEvent, body: bytes) -> str:
    """Astarte's `<realm>-<device>-<timestamp hex>-<hex>` shape. The last part is a digest of
    the body rather than random, so retries of one event keep one id (consumers can dedupe)."""
    digest = hashlib.blake2b(body, digest_size=8).hexdigest()
    return f"{event.realm[:64]}-{event.device_id[:16]}-{event.timestamp_ms:x}-{digest}"


class AmqpPublisher:
    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connecting = asyncio.Lock()

    async def deliver(self, action: AmqpAction, event: SimpleEvent, body: bytes) -> int:
        """200 once the broker confirmed the message, `PUBLISH_FAILED` otherwise."""
        message = aio_pika.Message(
            body,
            headers=dict(amqp_headers(action, event)),
            expiration=timedelta(milliseconds=action.message_expiration_ms),
            priority=action.message_priority,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            if action.message_persistent
            else aio_pika.DeliveryMode.NOT_PERSISTENT,
            message_id=message_id(event, body),
        )
        try:
            exchange = await self._exchange(action.exchange)
            await exchange.publish(
                message, action.routing_key, mandatory=False, timeout=self._timeout
            )
        except _FAILURES:
            await self.close()
            return PUBLISH_FAILED
        return 200

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._connecting:
            if self._channel is None or self._channel.is_closed:
                await self.close()
                self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
                self._channel = await self._connection.channel(publisher_confirms=True)
            if name not in self._exchanges:
                self._exchanges[name] = await self._channel.declare_exchange(
                    name, aio_pika.ExchangeType.DIRECT, durable=True, timeout=self._timeout
                )
            return self._exchanges[name]

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._exchanges.clear()
        if connection is not None:
            # The connection is being dropped because it already failed.
            with contextlib.suppress(*_FAILURES):
                await connection.close()
