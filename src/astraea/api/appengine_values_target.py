"""What an AppEngine interface-values route addresses: a device, one interface of its
introspection and a path in it, resolved with Astarte's errors."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from astraea.api.appengine_devices import resolve_device
from astraea.api.errors import ApiError
from astraea.api.realm_auth import RealmRequest
from astraea.core.endpoints import EndpointTree, InvalidPathError
from astraea.core.interface import Interface
from astraea.storage.base import Device


@dataclass(frozen=True, slots=True)
class ValueTarget:
    realm: str
    device: Device
    interface: Interface
    tree: EndpointTree
    path: str  # `/` is the interface root


def endpoint_not_found() -> ApiError:
    return ApiError(400, "Endpoint not found")


def path_not_found() -> ApiError:
    return ApiError(404, "Path not found")


def check_readable(target: ValueTarget) -> None:
    """GET accepts the root, full paths and partial ones (prefixes of endpoints)."""
    if target.path == "/":
        return
    try:
        if target.tree.resolve_partial(target.path):
            return
    except InvalidPathError:
        pass
    raise endpoint_not_found()


async def locate_device(
    auth: RealmRequest, device_ref: str, *, by_alias: bool = False, group: str | None = None
) -> Device:
    """The device a route names; within a group, only a member (404 `Device not found`).

    Group names are percent-decoded once more than the path, so `%2F` can carry a `/`.
    """
    device = await resolve_device(auth, device_ref, by_alias)
    if group is not None and unquote(group) not in device.groups:
        raise ApiError(404, "Device not found")
    return device


async def resolve_target(
    auth: RealmRequest, device: Device, interface_name: str, path: str
) -> ValueTarget:
    """The interface at the major the device declares; `path` is what follows the
    interface in the URL (empty for the root)."""
    declared = device.introspection.get(interface_name)
    if declared is None:
        raise ApiError(404, "Interface not found in device introspection")
    realm = auth.realm.name
    interface = await auth.context.storage.interfaces.get(realm, interface_name, declared.major)
    if interface is None:
        raise ApiError(404, "Interface not found")
    return ValueTarget(realm, device, interface, EndpointTree(interface.mappings), "/" + path)
