"""Repository interfaces every storage backend implements.

Callers depend only on these protocols; `astraea.storage.open_storage` picks the backend from
a URL, so adding a backend means adding one module and one branch there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from astraea.core.interface import Interface


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


class Storage(Protocol):
    realms: RealmRepository
    interfaces: InterfaceRepository

    async def close(self) -> None: ...
