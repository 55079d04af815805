"""Repository interfaces every storage backend implements.

Callers depend only on these protocols; `astraea.storage.open_storage` picks the backend from
a URL, so adding a backend means adding one module and one branch there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from astraea.core.interface import Aggregation, Interface
from astraea.core.sessions import SessionMessage, StoredSession
from astraea.core.trigger_deliveries import NewDelivery as NewDelivery
from astraea.core.trigger_deliveries import QueuedDelivery as QueuedDelivery
from astraea.core.trigger_policies import Policy
from astraea.core.triggers import InstalledTrigger, Trigger


class StorageError(Exception):
    """Base class of storage failures callers are expected to handle."""


class AlreadyExists(StorageError):
    """The record to create is already there (the message names what)."""


class NotFound(StorageError):
    """The record to change, or the realm that should own a new one, does not exist."""


class SchemaTooNew(StorageError):
    """The database was written by a newer Astraea; running older code on it could corrupt it."""


@dataclass(slots=True)
class Realm:
    name: str
    jwt_public_key_pem: str
    replication_class: str = "SimpleStrategy"
    replication_factor: int | None = 1
    datacenter_replication_factors: dict[str, int] | None = None
    device_registration_limit: int | None = None
    # Seconds; None means unset (rendered as 0 by Realm Management).
    datastream_maximum_storage_retention: int | None = None


class RealmRepository(Protocol):
    async def create(self, realm: Realm) -> None:
        """Raises AlreadyExists when a realm of that name exists."""

    async def get(self, name: str) -> Realm | None: ...

    async def list_names(self) -> list[str]: ...

    async def update(self, realm: Realm) -> None:
        """Raises NotFound when no realm has that name."""

    async def delete(self, name: str) -> bool:
        """Removes the realm and every row that belongs to it; False if it did not exist."""


class InterfaceRepository(Protocol):
    async def install(self, realm: str, interface: Interface) -> None:
        """Raises AlreadyExists for the same name and major, NotFound for an unknown realm."""

    async def replace(self, realm: str, interface: Interface) -> None:
        """Stores a minor update over the installed (name, major); NotFound if not installed."""

    async def get(self, realm: str, name: str, major: int) -> Interface | None: ...

    async def list_names(self, realm: str) -> list[str]: ...

    async def list_majors(self, realm: str, name: str) -> list[int]: ...

    async def list_all(self, realm: str) -> list[Interface]: ...

    async def find_name_collision(self, realm: str, name: str) -> str | None:
        """An installed name that differs from `name` but equals it once lowercased and
        stripped of hyphens (Astarte refuses such pairs)."""

    async def delete(self, realm: str, name: str, major: int) -> bool: ...

    async def is_used_by_devices(self, realm: str, name: str, major: int) -> bool:
        """True while any device of the realm declares (name, major) in its introspection."""


class AlreadyRegistered(StorageError):
    """The device already requested credentials, so it cannot be registered again."""


class RegistrationLimitReached(StorageError):
    """The realm's device registration limit is reached."""


@dataclass(slots=True)
class InterfaceUse:
    """One interface of a device's introspection (current or previous) and its traffic."""

    name: str
    major: int
    minor: int
    exchanged_msgs: int = 0
    exchanged_bytes: int = 0


@dataclass(slots=True)
class Device:
    """A device's registration and state. Times are aware UTC datetimes."""

    realm: str
    device_id: str  # canonical 22-character form
    credentials_secret_hash: str | None = None
    credentials_inhibited: bool = False
    first_registration: datetime | None = None
    first_credentials_request: datetime | None = None
    last_credentials_request_ip: str | None = None
    cert_serial: str | None = None  # decimal text: serials exceed 64 bits
    cert_aki: str | None = None
    connected: bool = False
    last_connection: datetime | None = None
    last_disconnection: datetime | None = None
    last_seen_ip: str | None = None
    total_received_msgs: int = 0
    total_received_bytes: int = 0
    introspection: dict[str, InterfaceUse] = field(default_factory=dict)
    previous_interfaces: list[InterfaceUse] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    pending_empty_cache: bool = False
    deletion_in_progress: bool = False
    # The transport node the device is (or was last) connected through; "" if not known.
    connection_node: str = ""
    # What the device declared on its capabilities topic, e.g.
    # {"purge_properties_compression_format": "plaintext"}; empty when it declared nothing.
    capabilities: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DevicePage:
    devices: list[Device]
    next_token: int | None  # opaque cursor for the next page, None on the last one


@dataclass(slots=True)
class TrafficUpdate:
    """Messages and bytes received from one device on one interface since the last update."""

    realm: str
    device_id: str
    interface_name: str | None  # None for control messages (count only towards totals)
    major: int | None
    msgs: int
    bytes: int
    seen_at: datetime


class DeviceRepository(Protocol):
    async def register(
        self,
        realm: str,
        device_id: str,
        secret_hash: str,
        introspection: dict[str, tuple[int, int]],
        now: datetime,
    ) -> None:
        """Creates the device, or replaces secret and introspection of one that never asked
        for credentials. Raises AlreadyRegistered / RegistrationLimitReached (the realm's
        limit counts registered devices)."""

    async def unregister(self, realm: str, device_id: str) -> bool:
        """Clears the secret and first credentials request so the device can register again."""

    async def get(self, realm: str, device_id: str) -> Device | None: ...

    async def find_by_alias(self, realm: str, alias: str) -> str | None: ...

    async def list_page(self, realm: str, limit: int, from_token: int | None) -> DevicePage: ...

    async def count(self, realm: str) -> tuple[int, int]:
        """(total devices, connected devices)."""

    async def record_credentials(
        self, realm: str, device_id: str, serial: str, aki: str, ip: str | None, now: datetime
    ) -> None: ...

    async def set_credentials_inhibited(self, realm: str, device_id: str, value: bool) -> None: ...

    async def update_aliases(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        """Sets (str) or deletes (None) alias tags atomically. Raises AlreadyExists when an alias
        belongs to another device and NotFound when a tag to delete is absent."""

    async def update_attributes(
        self, realm: str, device_id: str, changes: dict[str, str | None]
    ) -> None:
        """Sets or deletes attributes atomically; NotFound when a key to delete is absent."""

    async def set_introspection(
        self, realm: str, device_id: str, introspection: dict[str, tuple[int, int]]
    ) -> None:
        """Replaces the current introspection; interfaces leaving it become previous ones."""

    async def mark_connected(
        self, realm: str, device_id: str, ip: str, now: datetime, node: str = ""
    ) -> None:
        """The device is connected through transport node `node`."""

    async def mark_disconnected(
        self, realm: str, device_id: str, now: datetime, node: str | None = None
    ) -> bool:
        """Marks a connected device disconnected; with `node`, only if it is connected
        through that node (it may have reconnected through another since). True when it
        was connected and now is not."""

    async def connected_through(self, node: str) -> list[tuple[str, str]]:
        """(realm, device id) of every device connected through `node`."""

    async def set_capabilities(
        self, realm: str, device_id: str, capabilities: dict[str, str]
    ) -> None: ...

    async def set_pending_empty_cache(self, realm: str, device_id: str, value: bool) -> None: ...

    async def add_traffic(self, updates: list[TrafficUpdate]) -> None:
        """Adds message and byte counts in one write; called in batches from ingestion."""


class NodeRepository(Protocol):
    """Liveness of transport nodes: each writes a heartbeat; a node whose heartbeat stops is
    dead, and whoever notices first cleans up after it (its devices, its sessions)."""

    async def heartbeat(self, node: str, now: datetime) -> None: ...

    async def claim_dead(self, last_seen_before: datetime) -> list[str]:
        """Removes and returns the nodes last seen before the instant; each dead node is
        returned to exactly one caller, even when several ask at once."""


class SessionRepository(Protocol):
    """Persistent MQTT sessions (`astraea.core.sessions`), one per device.

    The owner is the node that holds the device: it keeps the session in memory while it
    does, and writes it back when the device leaves. Only unowned sessions take messages in
    storage, so a message is never appended behind the back of a node that holds the device.
    """

    async def get(self, realm: str, device_id: str) -> StoredSession | None: ...

    async def take(self, realm: str, device_id: str, node: str) -> StoredSession | None:
        """Makes `node` the owner and hands it the session, queued messages included (they
        leave storage); None, and nothing changes, when the device has no session."""

    async def create(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> None:
        """A new session owned by `node`, replacing any previous one."""

    async def save_subscriptions(
        self, realm: str, device_id: str, node: str, subscriptions: dict[str, int]
    ) -> bool:
        """Stores the subscriptions if `node` still owns the session."""

    async def release(self, realm: str, device_id: str, node: str, session: StoredSession) -> bool:
        """Writes the session back unowned (`session.owner` is ignored); False (nothing
        written) if `node` does not own it."""

    async def enqueue(
        self, realm: str, device_id: str, message: SessionMessage, *, max_queued: int
    ) -> bool:
        """Appends to an unowned session's queue (past `max_queued` the oldest messages go);
        False when there is no session or a node owns it."""

    async def discard(self, realm: str, device_id: str) -> None: ...

    async def release_node(self, node: str) -> int:
        """Sessions owned by a dead node become unowned; returns how many."""


class Storage(Protocol):
    delivery_queue: DeliveryQueueRepository
    nodes: NodeRepository
    sessions: SessionRepository
    realms: RealmRepository
    interfaces: InterfaceRepository
    devices: DeviceRepository
    values: ValueRepository
    triggers: TriggerRepository
    policies: PolicyRepository

    async def close(self) -> None: ...


@dataclass(slots=True)
class PropertyWrite:
    """Sets (or, with `value` None, unsets) one individual property of a device."""

    realm: str
    device_id: str
    interface_name: str
    major: int
    path: str
    value: object | None  # canonical value (astraea.core.values)
    reception_timestamp: datetime


@dataclass(slots=True)
class PropertyPurge:
    """Unsets every stored property of one device interface whose path is not in `keep`."""

    realm: str
    device_id: str
    interface_name: str
    major: int
    keep: frozenset[str]


@dataclass(slots=True)
class DatastreamSample:
    """One datastream sample; an object aggregate's value is a dict keyed by `object_key`."""

    realm: str
    device_id: str
    interface_name: str
    major: int
    path: str
    value: object
    value_timestamp: datetime  # the explicit timestamp, else the reception timestamp
    reception_timestamp: datetime  # strictly increasing per device (orders equal timestamps)
    expires_at: datetime | None  # None: kept forever
    aggregation: Aggregation = Aggregation.INDIVIDUAL


ValueWrite = PropertyWrite | PropertyPurge | DatastreamSample


@dataclass(frozen=True, slots=True)
class PropertyChange:
    """A property that a write created (`old` None), removed (`new` None) or changed."""

    interface_name: str
    major: int
    path: str
    old: object | None
    new: object | None


@dataclass(frozen=True, slots=True)
class StoredProperty:
    path: str
    value: object
    reception_timestamp: datetime


@dataclass(frozen=True, slots=True)
class StoredSample:
    path: str
    value: object  # a dict for object aggregates
    value_timestamp: datetime
    reception_timestamp: datetime


# Computes the deliveries of a batch from the property changes of its writes (`apply`'s result).
DeliveriesFor = Callable[[Sequence[tuple[PropertyChange, ...]]], Sequence[NewDelivery]]


class ValueRepository(Protocol):
    """Device interface values. Expired samples are never returned, whether purged or not;
    reads take `now` to decide what has expired."""

    async def apply(self, writes: Sequence[ValueWrite]) -> list[tuple[PropertyChange, ...]]:
        """Applies the writes in order in one transaction (one commit for a whole ingestion
        batch) and registers the datastream paths written. Returns, for each write, the
        property changes it made: none for samples and for properties set to their value."""

    async def apply_and_queue(
        self, writes: Sequence[ValueWrite], deliveries_for: DeliveriesFor
    ) -> tuple[list[tuple[PropertyChange, ...]], list[QueuedDelivery | None]]:
        """`apply`, then, in the same transaction, queues the trigger deliveries that
        `deliveries_for` derives from the property changes (as `DeliveryQueueRepository.
        enqueue` does): ingestion's outbox, so that a message's values and the trigger events
        they fire become durable together. `deliveries_for` may run on another thread and
        must only compute; with no writes and no deliveries nothing is written at all."""

    async def list_properties(
        self, realm: str, device_id: str, interface_name: str, major: int
    ) -> list[StoredProperty]:
        """The properties set on one device interface, by path."""

    async def samples(
        self,
        realm: str,
        device_id: str,
        interface_name: str,
        major: int,
        path: str,
        aggregation: Aggregation,
        *,
        now: datetime,
        since: datetime | None = None,
        since_after: datetime | None = None,
        to: datetime | None = None,
        limit: int | None = None,
        newest_first: bool | None = None,
    ) -> list[StoredSample]:
        """Samples of one path with `since` <= / `since_after` < value timestamp < `to`,
        oldest first; with `limit` but neither since bound, the newest `limit`, newest first
        (AppEngine's order). An explicit `newest_first` overrides that rule (AppEngine pages
        oldest first when it applies its own cap rather than the caller's limit)."""

    async def last_samples(
        self,
        realm: str,
        device_id: str,
        interface_name: str,
        major: int,
        aggregation: Aggregation,
        *,
        now: datetime,
    ) -> list[StoredSample]:
        """The newest sample of every path of one device interface, by path."""

    async def delete_interface_values(
        self, realm: str, device_id: str, interface_name: str, major: int
    ) -> None:
        """Removes every property, sample and path of one device interface."""

    async def purge_expired(self, now: datetime) -> int:
        """Deletes the samples and paths expired at `now`; returns how many rows went."""


class PolicyNotFound(NotFound):
    """A trigger names a delivery policy the realm does not have."""


class PolicyInUse(StorageError):
    """The delivery policy cannot be deleted while triggers use it."""


class TriggerRepository(Protocol):
    """A realm's triggers, and the version that tells readers the set changed.

    `triggers_version` is one primary-key read: ingestion polls it (at least once a second) and
    reloads `list_all` when it differs from the value it loaded with. It changes in the very
    transaction that installs or deletes a trigger, to a value the realm never had (0 until the
    first install), so compare it for equality only.
    """

    async def install(self, realm: str, trigger: Trigger) -> InstalledTrigger:
        """Stores the trigger under fresh ids. Raises AlreadyExists for a taken name,
        PolicyNotFound when the named policy is missing, NotFound for an unknown realm."""

    async def get(self, realm: str, name: str) -> InstalledTrigger | None: ...

    async def list_names(self, realm: str) -> list[str]: ...

    async def list_all(self, realm: str) -> list[InstalledTrigger]: ...

    async def delete(self, realm: str, name: str) -> bool: ...

    async def is_interface_used_by_triggers(self, realm: str, name: str, major: int) -> bool:
        """True while a data or device trigger names (name, major)."""

    async def triggers_version(self, realm: str) -> int: ...


class PolicyRepository(Protocol):
    async def install(self, realm: str, policy: Policy) -> None:
        """Raises AlreadyExists for a taken name, NotFound for an unknown realm."""

    async def get(self, realm: str, name: str) -> Policy | None: ...

    async def list_names(self, realm: str) -> list[str]: ...

    async def delete(self, realm: str, name: str) -> bool:
        """False if there was no such policy; raises PolicyInUse while triggers name it."""


class DeliveryQueueRepository(Protocol):
    """Durable FIFO queues of trigger deliveries, one per (realm, policy).

    Deliveries being attempted stay in their queue until removed; callers name them in
    `skip_seqs` so that fetching, trimming and expiring leave them alone.
    """

    async def enqueue(self, deliveries: Sequence[NewDelivery]) -> list[QueuedDelivery | None]:
        """Appends in one transaction; deliveries of realms that no longer exist are skipped.
        Returns each delivery as stored, in order (None: skipped); `seq`s only ever grow."""

    async def queues(self) -> list[tuple[str, str]]:
        """(realm, policy) of every non-empty queue."""

    async def fetch(
        self,
        realm: str,
        policy: str,
        *,
        limit: int,
        after: int = 0,
        skip_seqs: Sequence[int] = (),
    ) -> list[QueuedDelivery]:
        """The oldest deliveries with a `seq` above `after`, in order, leaving out the skipped
        ones."""

    async def record_failure(self, seq: int, attempts: int, next_attempt_at: int) -> None: ...

    async def remove(self, seq: int) -> None: ...

    async def trim(
        self, realm: str, policy: str, *, capacity: int, skip_seqs: Sequence[int] = ()
    ) -> list[tuple[int, uuid.UUID]]:
        """Removes the oldest deliveries beyond `capacity` (the skipped ones do not count);
        returns the seq and trigger id of each removed delivery."""

    async def drop_expired(
        self, realm: str, policy: str, *, now: int, skip_seqs: Sequence[int] = ()
    ) -> list[tuple[int, uuid.UUID]]:
        """Removes deliveries whose `expires_at` <= `now`; returns their seqs and trigger
        ids."""

    async def lease(self, realm: str, policy: str, owner: str, *, now: int, ttl: int) -> bool:
        """Takes or renews the right to deliver the queue until `now + ttl` (ms): True when
        `owner` holds it, whether it was free, expired or already its own."""

    async def release_lease(self, realm: str, policy: str, owner: str) -> None:
        """Gives the queue up, if `owner` holds it."""
