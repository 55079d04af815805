"""The MQTT 3.1.1 device listener and the platform's handle on connected devices.

Connection storms are paced at accept time: a socket is accepted only when one of
`max_concurrent_handshakes` slots is free and keeps it until its TLS handshake ends, so
excess connections wait in the kernel's listen backlog instead of all handshaking at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable
from types import TracebackType

from astraea.core.mqtt_topics import is_valid_topic_name
from astraea.transport.device_protocol import DeviceProtocol
from astraea.transport.hooks import DisconnectReason, TransportHooks
from astraea.transport.identity import DeviceIdentity
from astraea.transport.metrics import TransportStats
from astraea.transport.session_store import MemorySessionStore, SessionStore, kept_state
from astraea.transport.sessions import OutboundMessage, Session
from astraea.transport.settings import TransportSettings
from astraea.transport.tls import server_ssl_context

logger = logging.getLogger(__name__)

_LISTEN_BACKLOG = 1024
_ACCEPT_RETRY_DELAY = 0.1
_READ_BUFFER_SIZE = 256 * 1024


class MqttServer:
    """Accepts devices over mutually authenticated TLS and hands their traffic to the hooks.

    Use as `async with MqttServer(hooks, settings) as server:`; `port` is the bound port
    (useful with port 0).
    """

    def __init__(
        self,
        hooks: TransportHooks,
        settings: TransportSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        """`sessions` keeps persistent sessions while their devices are away (default: in
        this process's memory)."""
        self.hooks = hooks
        self.settings = settings
        self.ssl_context = ssl_context or server_ssl_context(settings)
        self.stats = TransportStats()
        self.read_buffer = memoryview(bytearray(_READ_BUFFER_SIZE))
        self._handshake_slots = asyncio.Semaphore(settings.max_concurrent_handshakes)
        self.store = sessions or MemorySessionStore(max_queued=settings.max_queued_messages)
        # Sessions of the devices connected here (their connection may be closing).
        self._sessions: dict[DeviceIdentity, Session] = {}
        self._attaching: dict[DeviceIdentity, asyncio.Lock] = {}
        self._live: dict[DeviceIdentity, DeviceProtocol] = {}
        self._connections: set[DeviceProtocol] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = _listening_socket(self.settings.host, self.settings.port)
        self._acceptor = asyncio.create_task(self._accept_forever(self._listener))

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the server is not started")
        return int(self._listener.getsockname()[1])

    async def close(self) -> None:
        """Stop listening, then disconnect every device once its hooks are done."""
        if self._acceptor is not None:
            self._acceptor.cancel()
            await asyncio.wait((self._acceptor,))
        if self._listener is not None:
            self._listener.close()
        handshakes = list(self._handshakes)
        for handshake in handshakes:
            handshake.cancel()
        await asyncio.gather(*handshakes, return_exceptions=True)
        connections = list(self._connections)
        await asyncio.gather(*(c.shut_down(DisconnectReason.SERVER_SHUTDOWN) for c in connections))
        self._acceptor = self._listener = None

    async def __aenter__(self) -> MqttServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # the platform's API

    async def publish_to_device(
        self,
        realm: str,
        device_id: str,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
    ) -> bool:
        """Send a message to a device through its matching subscriptions.

        True if a live connection took it or a persistent session queued it (QoS 1/2), here
        or in the session store while the device is away; False if the device has no session
        or no subscription matching `topic`, or if a QoS 0 message could not be sent now. The
        QoS is capped by the subscription's.
        """
        identity = DeviceIdentity(realm, device_id)
        here = self.publish_here(identity, topic, payload, qos, retain)
        if here is not None:
            return here
        return bool(qos) and await self.store.enqueue(identity, topic, payload, qos)

    def publish_here(
        self, identity: DeviceIdentity, topic: str, payload: bytes, qos: int, retain: bool = False
    ) -> bool | None:
        """`publish_to_device` for a device connected to this node; None if it is not."""
        if qos not in (0, 1, 2) or not is_valid_topic_name(topic):
            raise ValueError(f"cannot publish QoS {qos} to {topic!r}")
        session = self._sessions.get(identity)
        if session is None:
            return None
        granted = session.granted_qos(topic)
        if granted is None:
            return False
        message = OutboundMessage(topic, payload, min(qos, granted), retain)
        live = self._live.get(identity)
        if live is not None and not live.closing:
            return live.deliver(message)
        if not message.qos or not session.persistent:
            return False
        if not session.enqueue(message):
            self.stats.queued_dropped += 1
        return True

    async def disconnect_device(
        self, realm: str, device_id: str, reason: str, *, discard_session: bool = True
    ) -> bool:
        """Force a device off (its hooks see `DisconnectReason.FORCED`), by default also
        discarding its session as Astarte does; False if there was nothing to act on."""
        identity = DeviceIdentity(realm, device_id)
        live = self._live.get(identity)
        if live is not None:
            logger.info("disconnecting %s: %s", identity, reason)
            live.discard_session = discard_session
            await live.shut_down(DisconnectReason.FORCED)
        elif discard_session:
            await self.store.discard(identity)
        return live is not None

    def close_device(self, identity: DeviceIdentity, reason: DisconnectReason) -> bool:
        """Closes the device's connection without waiting for its hooks (a caller may be one
        of them, waiting on the bus); the session is discarded. False: not connected here."""
        live = self._live.get(identity)
        if live is None:
            return False
        live.discard_session = True
        live.close(reason)
        return True

    async def hand_over(self, identity: DeviceIdentity) -> bool:
        """Another node takes the device over: closes its connection here and returns once
        its session is in the store. False: not connected here."""
        live = self._live.get(identity)
        if live is None:
            return False
        await live.shut_down(DisconnectReason.TAKEN_OVER)
        return True

    # what connections need from their server (ConnectionHost)

    async def attach(
        self, identity: DeviceIdentity, connection: DeviceProtocol, *, clean_session: bool
    ) -> tuple[Session, bool]:
        lock = self._attaching.setdefault(identity, asyncio.Lock())
        try:
            async with lock:
                while (previous := self._live.get(identity)) is not None:
                    await previous.shut_down(DisconnectReason.TAKEN_OVER)
                # The previous connection's session is in the store now.
                stored = await self.store.open(identity, clean=clean_session)
                session = Session(
                    identity,
                    persistent=not clean_session,
                    max_queued=self.settings.max_queued_messages,
                )
                if stored is not None:
                    session.restore(stored)
                self._live[identity] = connection
                self._sessions[identity] = session
        finally:
            if not lock.locked() and self._attaching.get(identity) is lock:
                del self._attaching[identity]
        return session, stored is not None

    async def detach(self, connection: DeviceProtocol, session: Session) -> None:
        identity = session.identity
        if self._live.get(identity) is connection:
            del self._live[identity]
        if self._sessions.get(identity) is not session:
            return  # never attached, or a newer connection has it
        del self._sessions[identity]
        # As Astarte: a device that sent invalid data loses its session, so that on
        # reconnection it sends introspection, emptyCache and properties again.
        if connection.discard_session or connection.reason is DisconnectReason.REJECTED_MESSAGE:
            await self.store.discard(identity)
        elif session.persistent:
            await self.store.release(identity, kept_state(session))

    async def subscribed(self, session: Session) -> None:
        if session.persistent and self._sessions.get(session.identity) is session:
            await self.store.subscribed(session.identity, dict(session.subscriptions))

    def track(self, connection: DeviceProtocol) -> None:
        self._connections.add(connection)

    def untrack(self, connection: DeviceProtocol) -> None:
        self._connections.discard(connection)

    # accepting connections

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._handshake_slots.acquire()
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. out of file descriptors: back off, keep serving
                self._handshake_slots.release()
                logger.warning("accepting a device connection failed: %r", exc)
                await asyncio.sleep(_ACCEPT_RETRY_DELAY)
                continue
            except BaseException:
                self._handshake_slots.release()
                raise
            handshake = loop.create_task(self._handshake(connection))
            self._handshakes.add(handshake)
            handshake.add_done_callback(self._handshakes.discard)

    async def _handshake(self, connection: socket.socket) -> None:
        """TLS on an accepted socket; on success the DeviceProtocol takes over."""
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: DeviceProtocol(self),
                connection,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.settings.handshake_timeout,
            )
        except Exception as exc:  # whatever a hostile peer makes TLS raise
            self.stats.handshake_failures += 1
            logger.debug("TLS handshake failed: %r", exc)
        finally:
            self._handshake_slots.release()


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=_LISTEN_BACKLOG)
    listener.setblocking(False)
    return listener


def run(hooks: TransportHooks, settings: TransportSettings) -> None:
    """Serve devices until SIGINT or SIGTERM, on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=_fastest_loop_factory()) as runner:
        runner.run(_serve_until_signalled(hooks, settings))


async def _serve_until_signalled(hooks: TransportHooks, settings: TransportSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with MqttServer(hooks, settings) as server:
        logger.info("MQTT transport listening on %s:%d", settings.host, server.port)
        await stop.wait()


def _fastest_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop handled ~1.6x the QoS 1 rate of asyncio in the reference measurements."""
    with contextlib.suppress(ImportError):
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None
