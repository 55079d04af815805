"""The ingestion pipeline: device messages in, stored values, device state and outcomes out.

`Ingestor.process` handles one batch at a time, in order, so each device's messages keep
their order within and across batches. The value writes of a batch are committed together at
its end (see `batch`); device state changes (connection, introspection, pending emptyCache)
are rare and written as they happen, so a later message of the same batch that re-reads the
device sees them; traffic counters are summed in memory and written periodically (`traffic`).

Caches, and why each is safe when other processes change storage:
- device state (introspection, connection) is loaded when a device connects or first shows up
  and dropped when it disconnects; only the device itself changes its introspection;
- interface definitions and realm retention expire after `cache_ttl`, so a minor update or a
  new retention applies within that delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from astraea.bus.base import device_key, shard_of
from astraea.bus.messages import Connected, DeviceMessage, Disconnected, Published, Registered
from astraea.core.endpoints import EndpointTree, InvalidPathError
from astraea.core.interface import Aggregation, Interface, InterfaceType, Mapping, Ownership
from astraea.core.payloads import (
    DataPayload,
    DeviceTopic,
    PayloadError,
    PurgeFormat,
    TopicKind,
    classify_topic,
    consumer_properties_topic,
    decode_capabilities,
    decode_data_payload,
    decode_introspection,
    decode_purge_list,
    device_topic,
    encode_purge_list,
    encode_value_payload,
)
from astraea.core.retention import retention_seconds
from astraea.core.values import (
    InvalidValueError,
    MissingRequiredKeyError,
    UnexpectedObjectKeyError,
    ValueSizeError,
    validate_object_value,
    validate_value,
)
from astraea.ingest.batch import Draft, PendingWrites
from astraea.ingest.cache import TtlCache
from astraea.ingest.errors import DeviceError, ErrorName, error_metadata
from astraea.ingest.event_mapping import outcome_occurrences
from astraea.ingest.events import (
    DatastreamPathCreated,
    DeviceConnected,
    DeviceDisconnected,
    DeviceErrorOccurred,
    DeviceRegistered,
    IncomingData,
    IntrospectionReceived,
)
from astraea.ingest.messages import DevicePublish, Outcome
from astraea.ingest.traffic import TrafficCounter
from astraea.ingest.trigger_matching import TriggerMatcher
from astraea.storage.base import (
    DatastreamSample,
    NewDelivery,
    NotFound,
    PropertyPurge,
    PropertyWrite,
    Storage,
)

DEFAULT_CACHE_TTL = timedelta(seconds=1)
DEFAULT_TRAFFIC_INTERVAL = timedelta(seconds=1)
_CACHED_INTERFACES = 10_000
_CACHED_REALMS = 1_000
_RESOLVED_PATHS = 4_096  # per interface: parametric endpoints allow any number of paths
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY_CACHE_PATH = "/emptyCache"
_PURGE_FORMAT_KEY = "purge_properties_compression_format"
_PRODUCER_PROPERTIES_PATH = "/producer/properties"
_VALUE_ERRORS: dict[type[InvalidValueError], ErrorName] = {
    ValueSizeError: ErrorName.VALUE_SIZE_EXCEEDED,
    UnexpectedObjectKeyError: ErrorName.UNEXPECTED_OBJECT_KEY,
    MissingRequiredKeyError: ErrorName.MISSING_REQUIRED_MAPPING,
}


_Resolved = tuple[Mapping, dict[str, Mapping] | None] | ErrorName


@dataclass(frozen=True, slots=True)
class _LoadedInterface:
    interface: Interface
    tree: EndpointTree
    # Path -> what `_resolve` found: devices send the same paths over and over, and this
    # lives only as long as the cache entry (`cache_ttl`), so it needs no invalidation.
    resolved: dict[str, _Resolved] = field(default_factory=dict)


@dataclass(slots=True)
class _DeviceState:
    introspection: dict[str, tuple[int, int]]  # name -> (major, minor)
    connected: bool
    pending_empty_cache: bool
    discard: bool  # unknown or being deleted: messages are dropped, as Astarte does
    purge_format: PurgeFormat = PurgeFormat.ZLIB  # what every SDK uses unless told otherwise
    # (name, major) -> the individual datastream paths with live samples, read on first use.
    datastream_paths: dict[tuple[str, int], set[str]] = field(default_factory=dict)


class Ingestor:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        *,
        cache_ttl: timedelta = DEFAULT_CACHE_TTL,
        traffic_interval: timedelta = DEFAULT_TRAFFIC_INTERVAL,
        matcher: TriggerMatcher | None = None,
    ) -> None:
        """`matcher`: the realms' triggers, whose deliveries are queued with the values that
        fire them; None: no trigger fires."""
        self._storage = storage
        self._matcher = matcher
        self._clock = clock
        self._traffic = TrafficCounter()
        self._traffic_interval = traffic_interval
        self._traffic_flushed_at = clock()
        self._traffic_due = False
        self._interfaces: TtlCache[tuple[str, str, int], _LoadedInterface | None] = TtlCache(
            cache_ttl, _CACHED_INTERFACES
        )
        self._retention: TtlCache[str, int | None] = TtlCache(cache_ttl, _CACHED_REALMS)
        self._devices: dict[tuple[str, str], _DeviceState] = {}
        self._last_reception = 0
        self._lock = asyncio.Lock()

    async def process(self, batch: Sequence[DeviceMessage]) -> list[Outcome]:
        """Handles the messages in order; returns once the values and device state they
        wrote, and the trigger deliveries they fired, are durable. Traffic counters are
        written every `traffic_interval` and after a batch with a disconnection."""
        async with self._lock:
            now = self._clock()
            pending = PendingWrites()
            drafts = [await self._handle(message, pending, now) for message in batch]
            matcher = self._matcher
            if matcher is None:
                await pending.commit(self._storage.values, drafts)
            else:
                await matcher.prepare(
                    (m.realm, m.device_id) for m, d in zip(batch, drafts, strict=True) if d.events
                )
                await pending.commit(self._storage.values, drafts, self._deliveries)
            if self._traffic_due or not (
                timedelta(0) <= now - self._traffic_flushed_at < self._traffic_interval
            ):
                await self._flush_traffic(now)
        return [draft.outcome() for draft in drafts]

    def forget_shard(self, shard: int) -> None:
        """Drops what is remembered about the shard's devices: another worker may have
        changed them while it held the shard."""
        for key in [key for key in self._devices if shard_of(device_key(*key)) == shard]:
            del self._devices[key]

    def _deliveries(self, draft: Draft) -> list[NewDelivery]:
        """What the draft's events fire; runs inside the commit (see `PendingWrites`)."""
        assert self._matcher is not None
        triggers = self._matcher.triggers_of(draft.events[0].realm) if draft.events else None
        if triggers is None or triggers.empty:
            return []
        return self._matcher.deliveries(outcome_occurrences(draft.outcome(), triggers.index.wants))

    async def flush(self) -> None:
        """Writes the traffic counted so far; call it before shutting down."""
        async with self._lock:
            await self._flush_traffic(self._clock())

    async def _flush_traffic(self, now: datetime) -> None:
        await self._traffic.flush(self._storage.devices)
        self._traffic_flushed_at = now
        self._traffic_due = False

    async def _handle(self, message: DeviceMessage, pending: PendingWrites, now: datetime) -> Draft:
        key = (message.realm, message.device_id)
        kind = message.kind
        try:
            if isinstance(kind, Connected):
                return await self._connected(message, kind.ip)
            if isinstance(kind, Disconnected):
                return await self._disconnected(message)
            if isinstance(kind, Registered):
                return Draft(
                    events=[DeviceRegistered(message.realm, message.device_id, message.received_at)]
                )
            state = self._devices.get(key) or await self._load_device(key)
            if state.discard:
                return Draft()
            return await self._published(message, kind, state, pending, now)
        except NotFound:
            # The device was deleted meanwhile: from now on its messages are dropped.
            self._devices[key] = _DeviceState({}, False, False, discard=True)
            return Draft()

    async def _load_device(self, key: tuple[str, str]) -> _DeviceState:
        device = await self._storage.devices.get(*key)
        if device is None or device.deletion_in_progress:
            state = _DeviceState({}, False, False, discard=True)
        else:
            state = _DeviceState(
                {use.name: (use.major, use.minor) for use in device.introspection.values()},
                device.connected,
                device.pending_empty_cache,
                discard=False,
                purge_format=_purge_format(device.capabilities),
            )
        self._devices[key] = state
        return state

    async def _connected(self, message: DeviceMessage, ip: str) -> Draft:
        state = await self._load_device((message.realm, message.device_id))
        if state.discard:
            return Draft()
        await self._storage.devices.mark_connected(
            message.realm, message.device_id, ip, message.received_at, message.node
        )
        state.connected = True
        return Draft(
            events=[DeviceConnected(message.realm, message.device_id, message.received_at, ip)]
        )

    async def _disconnected(self, message: DeviceMessage) -> Draft:
        key = (message.realm, message.device_id)
        state = self._devices.get(key) or await self._load_device(key)
        del self._devices[key]
        if state.discard:
            return Draft()
        # Not if the device has connected through another node since.
        changed = await self._storage.devices.mark_disconnected(
            message.realm, message.device_id, message.received_at, message.node or None
        )
        self._traffic_due = True  # Astarte persists the counters at disconnection
        if not changed:
            return Draft()
        return Draft(
            events=[DeviceDisconnected(message.realm, message.device_id, message.received_at)]
        )

    async def _published(
        self,
        message: DeviceMessage,
        published: Published,
        state: _DeviceState,
        pending: PendingWrites,
        now: datetime,
    ) -> Draft:
        topic = classify_topic(published.topic_suffix)
        payload = published.payload
        if topic.kind is TopicKind.DATA:
            return await self._data(message, topic, payload, state, pending, now)
        if topic.kind is TopicKind.INTROSPECTION:
            return await self._introspection(message, payload, state, now)
        if topic.kind is TopicKind.EMPTY_CACHE:
            return await self._empty_cache(message, payload, state, now)
        if topic.kind is TopicKind.PRODUCER_PROPERTIES:
            return await self._producer_properties(message, payload, state, pending, now)
        if topic.kind is TopicKind.CAPABILITIES:
            return await self._capabilities(message, payload, state)
        return await self._reject(
            message,
            state,
            ErrorName.UNEXPECTED_CONTROL_MESSAGE,
            error_metadata(path=topic.path, payload=payload),
            size=len(payload) + _utf8_length(topic.path),
        )

    async def _data(
        self,
        message: DeviceMessage,
        topic: DeviceTopic,
        payload: bytes,
        state: _DeviceState,
        pending: PendingWrites,
        now: datetime,
    ) -> Draft:
        """The data pipeline of ingestion.md §3, checks in Astarte's order."""
        name, path = topic.interface, topic.path
        size = len(payload) + _utf8_length(name) + _utf8_length(path)
        declared = state.introspection.get(name)
        major = None if declared is None else declared[0]

        async def reject(error: ErrorName) -> Draft:
            metadata = error_metadata(interface=name, path=path, payload=payload)
            return await self._reject(message, state, error, metadata, name, major, size)

        if "//" in path:
            return await reject(ErrorName.INVALID_PATH)
        if major is None:
            return await reject(ErrorName.INTERFACE_LOADING_FAILED)
        loaded = await self._interface(message.realm, name, major, now)
        if loaded is None:
            return await reject(ErrorName.INTERFACE_LOADING_FAILED)
        interface = loaded.interface
        if interface.ownership is Ownership.SERVER:
            return await reject(ErrorName.WRITE_ON_SERVER_OWNED_INTERFACE)
        resolved = loaded.resolved.get(path)
        if resolved is None:
            resolved = _resolve(loaded, path)
            if len(loaded.resolved) < _RESOLVED_PATHS:
                loaded.resolved[path] = resolved
        if isinstance(resolved, ErrorName):
            return await reject(resolved)
        mapping, members = resolved
        decoded = _decode(mapping, members, payload)
        if isinstance(decoded, ErrorName):
            return await reject(decoded)

        timestamp = decoded.timestamp if mapping.explicit_timestamp else None
        incoming = IncomingData(
            message.realm,
            message.device_id,
            message.received_at,
            name,
            major,
            path,
            decoded.value,
            payload,
            timestamp,
        )
        unset_error = None
        if decoded.value is None and interface.type is InterfaceType.DATASTREAM:
            unset_error = ErrorName.UNSET_ON_DATASTREAM
        elif decoded.value is None and not mapping.allow_unset:
            unset_error = ErrorName.UNSET_NOT_ALLOWED
        if unset_error is not None:
            rejected = await reject(unset_error)
            rejected.events.insert(0, incoming)
            return rejected

        draft = Draft(events=[incoming])
        reception = self._reception(message.received_at)
        if interface.type is InterfaceType.PROPERTIES:
            write: PropertyWrite | DatastreamSample = PropertyWrite(
                message.realm, message.device_id, name, major, path, decoded.value, reception
            )
        else:
            write = DatastreamSample(
                message.realm,
                message.device_id,
                name,
                major,
                path,
                decoded.value,
                timestamp or reception,
                reception,
                await self._expiry(message.realm, mapping, reception, now),
                interface.aggregation,
            )
        pending.write(write, message, draft)
        if (
            isinstance(write, DatastreamSample)
            and write.aggregation is Aggregation.INDIVIDUAL
            and await self._path_is_new(message, state, name, major, path, now)
        ):
            draft.events.append(
                DatastreamPathCreated(
                    message.realm,
                    message.device_id,
                    message.received_at,
                    name,
                    major,
                    path,
                    decoded.value,
                    write.value_timestamp,
                )
            )
        self._traffic.count(message, name, major, size)
        return draft

    async def _path_is_new(
        self,
        message: DeviceMessage,
        state: _DeviceState,
        name: str,
        major: int,
        path: str,
        now: datetime,
    ) -> bool:
        """Whether an individual datastream path had no live sample: what the device has is
        read once per interface and connection (like Astarte's paths cache), then kept here."""
        known = state.datastream_paths.get((name, major))
        if known is None:
            known = await self._load_paths(message, state, name, major, now)
        if path in known:
            return False
        known.add(path)
        return True

    async def _preload_paths(
        self, message: DeviceMessage, state: _DeviceState, name: str, major: int, now: datetime
    ) -> None:
        """Reads the paths of a device-owned individual datastream when the introspection
        declares it, so that its first messages do not wait on storage: after a restart every
        device connects and publishes at once, and each read would hold up the whole batch."""
        if (name, major) in state.datastream_paths:
            return
        loaded = await self._interface(message.realm, name, major, now)
        if loaded is None:
            return
        interface = loaded.interface
        if (
            interface.type is InterfaceType.DATASTREAM
            and interface.aggregation is Aggregation.INDIVIDUAL
            and interface.ownership is Ownership.DEVICE
        ):
            await self._load_paths(message, state, name, major, now)

    async def _load_paths(
        self, message: DeviceMessage, state: _DeviceState, name: str, major: int, now: datetime
    ) -> set[str]:
        stored = await self._storage.values.last_samples(
            message.realm, message.device_id, name, major, Aggregation.INDIVIDUAL, now=now
        )
        known = state.datastream_paths[(name, major)] = {sample.path for sample in stored}
        return known

    async def _expiry(
        self, realm: str, mapping: Mapping, reception: datetime, now: datetime
    ) -> datetime | None:
        maximum = await self._retention.get(realm, now, lambda: self._realm_retention(realm))
        ttl = retention_seconds(mapping, maximum)
        return None if ttl is None else reception + timedelta(seconds=ttl)

    async def _introspection(
        self, message: DeviceMessage, payload: bytes, state: _DeviceState, now: datetime
    ) -> Draft:
        try:
            introspection = decode_introspection(payload)
        except PayloadError:
            return await self._reject(
                message,
                state,
                ErrorName.INVALID_INTROSPECTION,
                error_metadata(payload=payload),
                size=len(payload),
            )
        await self._storage.devices.set_introspection(
            message.realm, message.device_id, introspection
        )
        previous, state.introspection = state.introspection, introspection
        for name, version in introspection.items():
            if previous.get(name) != version:
                # A new minor may add mappings: do not wait for the cache to expire.
                self._interfaces.discard((message.realm, name, version[0]))
        for name, (major, _) in introspection.items():
            await self._preload_paths(message, state, name, major, now)
        self._traffic.count(message, None, None, len(payload))
        return Draft(
            events=[
                IntrospectionReceived(
                    message.realm, message.device_id, message.received_at, previous, introspection
                )
            ]
        )

    async def _empty_cache(
        self,
        message: DeviceMessage,
        payload: bytes,
        state: _DeviceState,
        now: datetime,
    ) -> Draft:
        """Sends the device every server-owned property it should hold, and the list of them
        so it drops the others (ingestion.md §5)."""
        realm, device_id = message.realm, message.device_id
        listed: list[tuple[str, str]] = []
        publishes: list[DevicePublish] = []
        for name, (major, _) in state.introspection.items():
            loaded = await self._interface(realm, name, major, now)
            if loaded is None:
                metadata = error_metadata(interface=name, payload=payload)
                return await self._reject(
                    message,
                    state,
                    ErrorName.INTERFACE_LOADING_FAILED,
                    metadata,
                    counted=False,
                )
            interface = loaded.interface
            if interface.type is not InterfaceType.PROPERTIES:
                continue
            if interface.ownership is not Ownership.SERVER:
                continue
            for stored in await self._storage.values.list_properties(realm, device_id, name, major):
                mapping = loaded.tree.resolve(stored.path)
                if mapping is None:
                    continue
                listed.append((name, stored.path))
                publishes.append(
                    DevicePublish(
                        realm,
                        device_id,
                        device_topic(realm, device_id, name, stored.path),
                        encode_value_payload(mapping.type, stored.value),
                        2,
                    )
                )
        purge_format = state.purge_format
        purge = DevicePublish(
            realm,
            device_id,
            consumer_properties_topic(realm, device_id),
            encode_purge_list(listed, purge_format),
            2,
        )
        await self._storage.devices.set_pending_empty_cache(realm, device_id, False)
        state.pending_empty_cache = False
        self._traffic.count(message, None, None, len(payload) + len(_EMPTY_CACHE_PATH))
        return Draft(publishes=[purge, *publishes])

    async def _producer_properties(
        self,
        message: DeviceMessage,
        payload: bytes,
        state: _DeviceState,
        pending: PendingWrites,
        now: datetime,
    ) -> Draft:
        """Unsets the device-owned properties the device no longer holds (ingestion.md §6)."""
        realm, device_id = message.realm, message.device_id
        purge_format = state.purge_format
        try:
            listed = decode_purge_list(payload, purge_format)
        except PayloadError:
            metadata = error_metadata(payload=payload)
            return await self._reject(message, state, ErrorName.PURGE_PROPERTIES_ERROR, metadata)
        draft = Draft()
        for name, (major, _) in state.introspection.items():
            loaded = await self._interface(realm, name, major, now)
            if loaded is None:
                continue
            interface = loaded.interface
            if interface.type is not InterfaceType.PROPERTIES:
                continue
            if interface.ownership is not Ownership.DEVICE:
                continue
            keep = frozenset(listed.get(name, ()))
            pending.write(PropertyPurge(realm, device_id, name, major, keep), message, draft)
        self._traffic.count(message, None, None, len(payload) + len(_PRODUCER_PROPERTIES_PATH))
        return draft

    async def _capabilities(
        self, message: DeviceMessage, payload: bytes, state: _DeviceState
    ) -> Draft:
        try:
            purge_format = decode_capabilities(payload)
        except PayloadError:
            return await self._reject(
                message,
                state,
                ErrorName.MALFORMED_CAPABILITIES_MESSAGE,
                error_metadata(payload=payload),
            )
        await self._storage.devices.set_capabilities(
            message.realm, message.device_id, {_PURGE_FORMAT_KEY: purge_format.value}
        )
        state.purge_format = purge_format
        self._traffic.count(message, None, None, len(payload))
        return Draft()

    async def _reject(
        self,
        message: DeviceMessage,
        state: _DeviceState,
        error: ErrorName,
        metadata: dict[str, str],
        interface_name: str | None = None,
        major: int | None = None,
        size: int = 0,
        *,
        counted: bool | None = None,
    ) -> Draft:
        """Discards the message; a clean-session error also flags the device for emptyCache
        (the transport disconnects it)."""
        if error.counts_traffic if counted is None else counted:
            self._traffic.count(message, interface_name, major, size)
        if error.clean_session and not state.pending_empty_cache:
            await self._storage.devices.set_pending_empty_cache(
                message.realm, message.device_id, True
            )
            state.pending_empty_cache = True
        draft = Draft(error=DeviceError(error, metadata))
        if error.fires_trigger:
            draft.events.append(
                DeviceErrorOccurred(
                    message.realm, message.device_id, message.received_at, error.value, metadata
                )
            )
        return draft

    async def _interface(
        self, realm: str, name: str, major: int, now: datetime
    ) -> _LoadedInterface | None:
        async def load() -> _LoadedInterface | None:
            interface = await self._storage.interfaces.get(realm, name, major)
            return (
                None
                if interface is None
                else _LoadedInterface(interface, EndpointTree(interface.mappings))
            )

        return await self._interfaces.get((realm, name, major), now, load)

    async def _realm_retention(self, realm: str) -> int | None:
        found = await self._storage.realms.get(realm)
        return None if found is None else found.datastream_maximum_storage_retention

    def _reception(self, received_at: datetime) -> datetime:
        """Reception times strictly increase, so equal timestamps keep their arrival order
        and never collide in storage keys."""
        micros = max((received_at - _EPOCH) // _MICROSECOND, self._last_reception + 1)
        self._last_reception = micros
        return _EPOCH + micros * _MICROSECOND


def _resolve(loaded: _LoadedInterface, path: str) -> _Resolved:
    """The mapping a path writes to and, for objects, every mapping keyed by object key
    (they share the attributes ingestion reads from the first one)."""
    try:
        if loaded.interface.aggregation is Aggregation.OBJECT:
            members = loaded.tree.resolve_object(path)
            if members is None:
                return ErrorName.MAPPING_NOT_FOUND
            mappings = list(members.values())
        else:
            members = None
            mapping = loaded.tree.resolve(path)
            if mapping is None:
                partial = loaded.tree.resolve_partial(path)
                return ErrorName.AMBIGUOUS_PATH if partial else ErrorName.MAPPING_NOT_FOUND
            mappings = [mapping]
    except InvalidPathError:
        return ErrorName.INVALID_PATH
    if any(mapping.encrypted for mapping in mappings):
        # Astraea does not implement key agreement, so no shared key is ever established.
        return ErrorName.KEY_AGREEMENT_ERROR
    return mappings[0], members


def _decode(
    mapping: Mapping, members: dict[str, Mapping] | None, payload: bytes
) -> DataPayload | ErrorName:
    """The payload with its value validated and canonicalised (None still means unset)."""
    try:
        decoded = decode_data_payload(payload)
        if decoded.value is None:
            return decoded
        if members is not None:
            return DataPayload(validate_object_value(members, decoded.value), decoded.timestamp)
        return DataPayload(validate_value(mapping.type, decoded.value), decoded.timestamp)
    except PayloadError as exc:
        return ErrorName(exc.device_error)
    except InvalidValueError as exc:
        return _VALUE_ERRORS.get(type(exc), ErrorName.UNEXPECTED_VALUE_TYPE)


def _purge_format(capabilities: dict[str, str]) -> PurgeFormat:
    try:
        return PurgeFormat(capabilities.get(_PURGE_FORMAT_KEY, PurgeFormat.ZLIB))
    except ValueError:
        return PurgeFormat.ZLIB


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))
