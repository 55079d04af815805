"""AppEngine device routes (claim `a_aea`): the device list, device status and its merge
patch, devices by alias, a device's interfaces and the realm's device counts.

`resolve_device` turns a path's device reference into a device with Astarte's errors; every
AppEngine route under `/devices/{id}` or `/devices-by-alias/{alias}` uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import QueryParams

from astraea.api.body import read_data_object
from astraea.api.changeset import Changeset
from astraea.api.device_status import device_status_json
from astraea.api.errors import ApiError, ValidationFailed, bad_request
from astraea.api.realm_auth import RealmRequest, realm_authorizer
from astraea.api.responses import JsonResponse
from astraea.core.device_id import InvalidDeviceId, canonical_device_id
from astraea.storage.base import AlreadyExists, Device, NotFound

PREFIX = "/appengine/v1/{realm_name}"
DEFAULT_LIST_LIMIT = 1000
# Astarte parses PATCH bodies of any JSON media type; the merge-patch one is the documented.
_PATCH_MEDIA_TYPES = frozenset({"application/merge-patch+json", "application/json"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

Authorized = Annotated[
    RealmRequest, Depends(realm_authorizer("a_aea", ApiError(401, "Invalid JWT token")))
]
router = APIRouter(prefix=PREFIX, tags=["appengine"])


async def resolve_device(auth: RealmRequest, device_ref: str, by_alias: bool) -> Device:
    """The device a path names by id or, when `by_alias`, by one of its aliases.

    400 `Bad request` for an invalid or extended id (AppEngine takes 128-bit ids only) and 404
    `Device not found` when nothing matches.
    """
    devices = auth.context.storage.devices
    if by_alias:
        device_id = await devices.find_by_alias(auth.realm.name, device_ref)
    else:
        try:
            device_id = canonical_device_id(device_ref)
        except InvalidDeviceId:
            raise bad_request() from None
    device = None if device_id is None else await devices.get(auth.realm.name, device_id)
    if device is None:
        raise ApiError(404, "Device not found")
    return device


@router.get("/devices")
async def list_devices(request: Request, auth: Authorized) -> JsonResponse:
    params = request.query_params
    limit, from_token, details = _list_options(params)
    page = await auth.context.storage.devices.list_page(auth.realm.name, limit, from_token)
    # Links repeat the options the request gave, as given, in Astarte's (alphabetical) order.
    given = {key: params[key] for key in ("details", "from_token", "limit") if params.get(key)}
    base = f"/v1/{auth.realm.name}/devices"
    links = {"self": _link(base, given)}
    if page.next_token is not None:
        links["next"] = _link(base, {**given, "from_token": str(page.next_token)})
    data: list[Any] = (
        [device_status_json(device) for device in page.devices]
        if details
        else [device.device_id for device in page.devices]
    )
    return JsonResponse({"links": links, "data": data})


@router.get("/devices/{device_id}")
async def get_device(device_id: str, auth: Authorized) -> JsonResponse:
    return _status_response(await resolve_device(auth, device_id, by_alias=False))


@router.get("/devices-by-alias/{alias}")
async def get_device_by_alias(alias: str, auth: Authorized) -> JsonResponse:
    return _status_response(await resolve_device(auth, alias, by_alias=True))


@router.patch("/devices/{device_id}")
async def patch_device(device_id: str, request: Request, auth: Authorized) -> JsonResponse:
    return await _merge_status(request, auth, device_id, by_alias=False)


@router.patch("/devices-by-alias/{alias}")
async def patch_device_by_alias(alias: str, request: Request, auth: Authorized) -> JsonResponse:
    return await _merge_status(request, auth, alias, by_alias=True)


@router.get("/devices/{device_id}/interfaces")
async def device_interfaces(device_id: str, auth: Authorized) -> JsonResponse:
    return _interfaces_response(await resolve_device(auth, device_id, by_alias=False))


@router.get("/devices-by-alias/{alias}/interfaces")
async def device_interfaces_by_alias(alias: str, auth: Authorized) -> JsonResponse:
    return _interfaces_response(await resolve_device(auth, alias, by_alias=True))


@router.get("/stats/devices")
async def device_stats(auth: Authorized) -> JsonResponse:
    total, connected = await auth.context.storage.devices.count(auth.realm.name)
    return JsonResponse({"data": {"total_devices": total, "connected_devices": connected}})


@dataclass(slots=True)
class _StatusPatch:
    """The changes of a DeviceStatus merge patch; None leaves a part untouched."""

    aliases: dict[str, str | None] | None = None
    attributes: dict[str, str | None] | None = None
    credentials_inhibited: bool | None = None


def _parse_status_patch(data: dict[str, Any]) -> _StatusPatch:
    """Checks the whole patch before anything is applied; unknown keys are ignored."""
    patch = _StatusPatch()
    if "aliases" in data:
        patch.aliases = _string_changes(data["aliases"], "Invalid alias", allow_empty=False)
    if "attributes" in data:
        patch.attributes = _string_changes(data["attributes"], "Invalid attributes")
    if "credentials_inhibited" in data:
        inhibited = data["credentials_inhibited"]
        if not isinstance(inhibited, bool):
            raise ValidationFailed({"credentials_inhibited": ["is invalid"]})
        patch.credentials_inhibited = inhibited
    return patch


async def _merge_status(
    request: Request, auth: RealmRequest, device_ref: str, *, by_alias: bool
) -> JsonResponse:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in _PATCH_MEDIA_TYPES:
        raise ApiError(415, "Unsupported media type")
    data = await read_data_object(request)
    device = await resolve_device(auth, device_ref, by_alias)
    patch = _parse_status_patch(data)
    devices = auth.context.storage.devices
    realm = auth.realm.name
    if patch.aliases:
        try:
            await devices.update_aliases(realm, device.device_id, patch.aliases)
        except AlreadyExists:
            raise ApiError(409, "Alias already in use") from None
        except NotFound:
            raise ApiError(400, "Alias tag not found") from None
    if patch.attributes:
        try:
            await devices.update_attributes(realm, device.device_id, patch.attributes)
        except NotFound:
            raise ApiError(422, "Attribute key not found") from None
    if patch.credentials_inhibited is not None:
        await devices.set_credentials_inhibited(
            realm, device.device_id, patch.credentials_inhibited
        )
    return _status_response(await resolve_device(auth, device.device_id, by_alias=False))


def _string_changes(
    value: object, error: str, *, allow_empty: bool = True
) -> dict[str, str | None]:
    """A merge-patch map of non-empty keys to strings (set) or null (delete)."""
    if not isinstance(value, dict):
        raise ApiError(400, error)
    for key, item in value.items():
        if key == "" or not (item is None or (isinstance(item, str) and (allow_empty or item))):
            raise ApiError(400, error)
    return value


def _list_options(params: QueryParams) -> tuple[int, int | None, bool]:
    """Astarte's listing options: `limit` > 0 (default 1000), an integer `from_token`, and a
    boolean `details`; empty values count as absent."""
    changes = Changeset(dict(params))
    limit = _query_int(changes, "limit")
    if limit is not None and limit <= 0:
        changes.add("limit", "must be greater than 0")
    from_token = _query_int(changes, "from_token")
    details = False
    if params.get("details"):
        details_value = _BOOLEANS.get(params["details"])
        if details_value is None:
            changes.add("details", "is invalid")
        details = bool(details_value)
    changes.raise_if_invalid()
    return limit or DEFAULT_LIST_LIMIT, from_token, details


def _query_int(changes: Changeset, field: str) -> int | None:
    raw = changes.data.get(field)
    if not raw:
        return None
    if not _INTEGER.fullmatch(raw):
        changes.add(field, "is invalid")
        return None
    return int(raw)


def _link(base: str, params: dict[str, str]) -> str:
    return f"{base}?{urlencode(sorted(params.items()))}" if params else base


def _status_response(device: Device) -> JsonResponse:
    return JsonResponse({"data": device_status_json(device)})


def _interfaces_response(device: Device) -> JsonResponse:
    return JsonResponse({"data": sorted(device.introspection)})
