"""The asyncio side of one device connection: packet pump, hooks, backpressure.

The server hands over a connection once its TLS handshake succeeded. `buffer_updated` feeds
the sans-IO `ServerConnection` and decodes events into a bounded queue; a per-connection
task drains that queue in wire order, awaiting one hook call at a time, and writes the
acks of a whole batch together after their hooks returned.

Backpressure: reading pauses while the queue is full, while the decoder holds bytes it may
not decode yet (CONNECT still being decided), or while the socket does not take our writes
(`pause_writing`). While writes are blocked, server->device QoS 0 messages are dropped;
QoS 1/2 ones are bounded by the session's in-flight window and queue, and a device that
overflows the queue is disconnected as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Protocol, cast

from astraea.core.logfmt import logfmt
from astraea.transport.acl import TopicAcl
from astraea.transport.connection_state import Event, ServerConnection
from astraea.transport.hooks import DisconnectReason, RejectMessage, TransportHooks
from astraea.transport.identity import DeviceIdentity
from astraea.transport.metrics import TransportStats
from astraea.transport.packets import (
    SUBSCRIPTION_FAILURE,
    Connect,
    ConnectReturnCode,
    ProtocolError,
    Publish,
    Subscribe,
    Unsubscribe,
)
from astraea.transport.sessions import OutboundMessage, Session
from astraea.transport.settings import TransportSettings
from astraea.transport.tls import peer_identity

logger = logging.getLogger(__name__)
# One structured line per device connection accepted, refused or ended.
connections = logging.getLogger("astraea.connections")

#: How long to wait before checking the deadline again while we, not the device, are slow.
_BUSY_RECHECK = 1.0


class ConnectionHost(Protocol):
    """What a connection needs from the server that owns it."""

    hooks: TransportHooks
    settings: TransportSettings
    stats: TransportStats
    #: Where TLS decrypts incoming bytes. One buffer serves every connection of the loop:
    #: each read is copied out of it before the loop moves on to another connection.
    read_buffer: memoryview

    async def attach(
        self, identity: DeviceIdentity, connection: DeviceProtocol, *, clean_session: bool
    ) -> tuple[Session, bool]:
        """Make `connection` the device's live one (taking over any other) and open its
        session; returns the session and whether it was already there."""
        ...

    async def detach(self, connection: DeviceProtocol, session: Session) -> None:
        """The connection ended: the session goes to the store (or is discarded)."""
        ...

    async def subscribed(self, session: Session) -> None:
        """The session's subscriptions changed."""
        ...

    def track(self, connection: DeviceProtocol) -> None: ...

    def untrack(self, connection: DeviceProtocol) -> None: ...


class DeviceProtocol(asyncio.BufferedProtocol):
    """Buffered, so TLS decrypts straight into the host's reused buffer: a copying protocol
    makes uvloop allocate (and mmap) a fresh 256 KiB chunk per TLS record, measured at ~3x
    the server CPU per message."""

    def __init__(self, host: ConnectionHost) -> None:
        self._host = host
        self._hooks = host.hooks
        self._settings = settings = host.settings
        self._loop = asyncio.get_running_loop()
        self._connection = ServerConnection(
            self._loop.time(),
            connect_timeout=settings.connect_timeout,
            max_inflight=settings.max_inflight,
            max_packet_size=settings.max_packet_size,
        )
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._writable = True
        self._reading_paused = False
        self._busy = False
        self._closing = False
        self._reason = DisconnectReason.CONNECTION_LOST
        self._identity: DeviceIdentity | None = None
        self._acl: TopicAcl | None = None
        self._peer_cert_der = b""
        self._peer_ip = ""
        self._announced = False
        #: Set before closing to drop the session rather than keep it for the next connection.
        self.discard_session = False

    @property
    def identity(self) -> DeviceIdentity | None:
        return self._identity

    @property
    def reason(self) -> DisconnectReason | None:
        """Why the connection is closing; None while it is open."""
        return self._reason if self._closing else None

    @property
    def closing(self) -> bool:
        return self._closing

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=self._settings.write_buffer_limit)
        peer = transport.get_extra_info("peername")
        self._peer_ip = str(peer[0]) if peer else ""
        self._identity, self._peer_cert_der = peer_identity(transport)
        self._host.track(self)
        self._task = self._loop.create_task(self._run())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._host.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        if not self._closing:
            self._connection.receive_data(self._host.read_buffer[:nbytes])
            self._decode()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._connection.close()
        self._cancel_timer()
        self._wakeup.set()

    def pause_writing(self) -> None:
        self._writable = False
        self._set_reading(enabled=False)

    def resume_writing(self) -> None:
        self._writable = True
        if not self._closing:
            self._decode()

    # server-side API

    def deliver(self, message: OutboundMessage) -> bool:
        """Send or queue a server->device message; True if it was sent or kept for later."""
        if not message.qos and not self._writable:
            self._host.stats.qos0_dropped += 1
            return False
        if self._connection.send_message(message):
            self._flush()
            return True
        self._host.stats.queued_dropped += 1
        session = self._connection.session
        self._close(DisconnectReason.SLOW_CONSUMER)
        return session is not None and session.persistent

    def close(self, reason: DisconnectReason) -> None:
        """Close the connection now; its hooks finish on their own."""
        self._close(reason)

    async def shut_down(self, reason: DisconnectReason) -> None:
        """Close the connection and wait until its hooks are done (`on_disconnect` included)."""
        self._close(reason)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait((task,))

    # the connection task

    async def _run(self) -> None:
        try:
            self._arm_timer()
            await self._serve()
        except Exception:
            logger.exception("MQTT connection from %s failed", self._peer_ip)
            self._close(DisconnectReason.INTERNAL_ERROR)
        finally:
            await self._finish()

    async def _serve(self) -> None:
        pending = self._pending
        while not self._closing:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._busy = True
            try:
                await self._process(len(pending))
            finally:
                self._busy = False
            self._flush()
            if not self._closing:
                self._decode()

    async def _process(self, count: int) -> None:
        """Handle the first `count` pending events in order, stopping once closing."""
        pending = self._pending
        for _ in range(count):
            if self._closing:
                return
            event = pending.popleft()
            if isinstance(event, Publish):
                await self._handle_publish(event)
            elif isinstance(event, Connect):
                await self._handle_connect(event)
            elif isinstance(event, Subscribe):
                await self._handle_subscribe(event)
            elif isinstance(event, Unsubscribe):
                self._connection.complete_unsubscribe(event)
                await self._session_changed()
            else:
                self._close(DisconnectReason.CLIENT_DISCONNECT)

    async def _handle_connect(self, connect: Connect) -> None:
        identity = self._identity
        try:
            allowed = identity is not None and await self._hooks.authenticate(
                identity.realm, identity.device_id, self._peer_cert_der
            )
        except Exception:
            logger.exception("authenticate hook failed for %s", identity)
            self._refuse(ConnectReturnCode.SERVER_UNAVAILABLE)
            return
        if self._closing:
            return
        if identity is None or not allowed:
            self._refuse(ConnectReturnCode.NOT_AUTHORIZED)
            return
        session, present = await self._host.attach(
            identity, self, clean_session=connect.clean_session
        )
        if self._closing:
            await self._host.detach(self, session)
            return
        self._acl = TopicAcl(identity)
        self._connection.accept(session, session_present=present)
        self._flush()
        self._announced = True
        self._cancel_timer()
        self._arm_timer()
        self._log_connection("connect", session_present=present)
        await self._call_hook(
            self._hooks.on_connect(identity.realm, identity.device_id, self._peer_ip, present)
        )

    async def _handle_publish(self, publish: Publish) -> None:
        identity = self._identity
        acl = self._acl
        assert identity is not None and acl is not None
        if not acl.allows(publish.topic):
            logger.info("%s published outside its topics: %r", identity, publish.topic)
            self._close(DisconnectReason.ACL_VIOLATION)
            return
        self._host.stats.messages_received += 1
        try:
            await self._hooks.on_publish(
                identity.realm, identity.device_id, publish.topic, publish.payload, publish.qos
            )
        except RejectMessage:
            self._close(DisconnectReason.REJECTED_MESSAGE)
            return
        except Exception:
            logger.exception("on_publish hook failed for %s", identity)
            self._close(DisconnectReason.HOOK_FAILURE)
            return
        if publish.qos:
            self._connection.acknowledge(publish)

    async def _handle_subscribe(self, subscribe: Subscribe) -> None:
        identity = self._identity
        acl = self._acl
        assert identity is not None and acl is not None
        codes = tuple(
            qos if acl.allows(topic_filter) else SUBSCRIPTION_FAILURE
            for topic_filter, qos in subscribe.subscriptions
        )
        self._connection.complete_subscribe(subscribe, codes)
        self._flush()
        await self._session_changed()
        granted = [
            (topic_filter, code)
            for (topic_filter, _), code in zip(subscribe.subscriptions, codes, strict=True)
            if code != SUBSCRIPTION_FAILURE
        ]
        if granted:
            await self._call_hook(
                self._hooks.on_subscribe(identity.realm, identity.device_id, granted)
            )

    async def _session_changed(self) -> None:
        session = self._connection.session
        if session is not None:
            await self._call_hook(self._host.subscribed(session))

    async def _call_hook(self, call: Awaitable[None]) -> None:
        """Await a notification hook; a failing one disconnects the device."""
        try:
            await call
        except Exception:
            logger.exception("hook failed for %s", self._identity)
            self._close(DisconnectReason.HOOK_FAILURE)

    def _refuse(self, return_code: ConnectReturnCode) -> None:
        self._log_connection("refuse", reason=return_code.name.lower())
        self._host.stats.connections_refused += 1
        self._connection.refuse(return_code)
        self._close(DisconnectReason.NOT_AUTHORIZED)

    async def _finish(self) -> None:
        self._closing = True
        self._cancel_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        session = self._connection.session
        if session is not None:
            try:
                await self._host.detach(self, session)
            except Exception:  # the session is lost, the connection must still end cleanly
                logger.exception("could not keep the session of %s", self._identity)
        self._host.untrack(self)
        identity = self._identity
        if self._announced and identity is not None:
            self._log_connection("disconnect", reason=self._reason.value)
            try:
                await self._hooks.on_disconnect(identity.realm, identity.device_id, self._reason)
            except Exception:
                logger.exception("on_disconnect hook failed for %s", identity)

    # plumbing

    def _log_connection(self, event: str, **details: object) -> None:
        if connections.isEnabledFor(logging.INFO):
            identity = self._identity
            fields = {
                "event": event,
                "realm": None if identity is None else identity.realm,
                "device": None if identity is None else identity.device_id,
                "ip": self._peer_ip or None,
                **details,
            }
            connections.info("%s", logfmt(fields), extra=fields)

    def _decode(self) -> None:
        """Move decoded events into the queue while there is room, then gate reading."""
        connection = self._connection
        pending = self._pending
        limit = self._settings.max_pending_packets
        if self._writable:
            now = self._loop.time()
            try:
                while len(pending) < limit:
                    event = connection.next_event(now)
                    if event is None:
                        break
                    pending.append(event)
            except ProtocolError as exc:
                logger.info("protocol error from %s: %s", self._identity, exc.reason)
                pending.clear()
                self._close(DisconnectReason.PROTOCOL_ERROR)
                return
            self._flush()
            if pending:
                self._wakeup.set()
                stats = self._host.stats
                stats.pending_high_water = max(stats.pending_high_water, len(pending))
        blocked = (
            not self._writable
            or len(pending) >= limit
            or connection.buffered >= self._settings.max_packet_size
        )
        self._set_reading(enabled=not blocked)

    def _set_reading(self, *, enabled: bool) -> None:
        transport = self._transport
        if transport is None or self._closing or enabled != self._reading_paused:
            return
        self._reading_paused = not enabled
        if enabled:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def _flush(self) -> None:
        data = self._connection.data_to_send()
        if data and not self._closing and self._transport is not None:
            self._transport.write(data)

    def _close(self, reason: DisconnectReason) -> None:
        if self._closing:
            return
        self._flush()
        self._closing = True
        self._reason = reason
        self._connection.close()
        self._cancel_timer()
        self._wakeup.set()
        if reason is not DisconnectReason.CLIENT_DISCONNECT:
            logger.debug("closing MQTT connection of %s: %s", self._identity, reason)
        if self._transport is not None:
            if reason is DisconnectReason.SLOW_CONSUMER:
                self._transport.abort()
            else:
                self._transport.close()

    def _arm_timer(self) -> None:
        deadline = self._connection.deadline()
        if deadline is not None and not self._closing:
            self._timer = self._loop.call_at(deadline, self._on_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        deadline = self._connection.deadline()
        if deadline is None or self._closing:
            return
        now = self._loop.time()
        if self._busy or self._reading_paused or self._pending:
            self._timer = self._loop.call_at(max(deadline, now + _BUSY_RECHECK), self._on_deadline)
        elif now >= deadline:
            self._close(DisconnectReason.KEEPALIVE_TIMEOUT)
        else:
            self._timer = self._loop.call_at(deadline, self._on_deadline)
