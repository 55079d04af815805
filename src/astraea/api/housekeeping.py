"""Housekeeping API: realm lifecycle, authorized by the instance-wide key (claim `a_ha`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from astraea import __version__
from astraea.api.auth import authorize, parse_public_key
from astraea.api.body import read_data_object
from astraea.api.changeset import Changeset
from astraea.api.context import ApiContext, get_context
from astraea.api.errors import ApiError
from astraea.api.responses import JsonResponse
from astraea.core.realm_name import is_valid_realm_name
from astraea.storage.base import AlreadyExists, Realm

PREFIX = "/housekeeping/v1"
_SIMPLE = "SimpleStrategy"
_TOPOLOGY = "NetworkTopologyStrategy"


async def _authorized(request: Request) -> ApiContext:
    context = get_context(request)
    if not context.settings.disable_auth:
        authorize(
            request,
            claim="a_ha",
            public_key_pem=context.settings.housekeeping_public_key_pem,
            skip_segments=2,
        )
    return context


Authorized = Annotated[ApiContext, Depends(_authorized)]
router = APIRouter(prefix=PREFIX, tags=["housekeeping"])


def realm_to_json(realm: Realm) -> dict[str, Any]:
    out: dict[str, Any] = {
        "realm_name": realm.name,
        "jwt_public_key_pem": realm.jwt_public_key_pem,
        "replication_class": realm.replication_class,
    }
    if realm.replication_class == _TOPOLOGY:
        out["datacenter_replication_factors"] = realm.datacenter_replication_factors
    else:
        out["replication_factor"] = realm.replication_factor
    out["device_registration_limit"] = realm.device_registration_limit
    out["datastream_maximum_storage_retention"] = realm.datastream_maximum_storage_retention
    return out


def _check_public_key(changes: Changeset) -> str | None:
    pem = changes.required_string("jwt_public_key_pem")
    if pem is not None and parse_public_key(pem) is None:
        changes.add("jwt_public_key_pem", "is not a valid PEM public key")
        return None
    return pem


def _check_replication(changes: Changeset) -> tuple[str, int | None, dict[str, int] | None]:
    data = changes.data
    replication_class = data.get("replication_class") or _SIMPLE
    factors = data.get("datacenter_replication_factors")
    if replication_class not in (_SIMPLE, _TOPOLOGY):
        changes.add("replication_class", "is invalid")
        return _SIMPLE, 1, None
    if replication_class == _SIMPLE:
        if factors is not None:
            changes.add(
                "datacenter_replication_factors",
                "must be used with replication_class NetworkTopologyStrategy",
            )
        factor = changes.optional_int("replication_factor", minimum=1)
        return _SIMPLE, factor or 1, None
    if factors is None:
        changes.add(
            "datacenter_replication_factors",
            "needs to be provided with NetworkTopologyStrategy",
        )
        return _TOPOLOGY, None, None
    if not isinstance(factors, dict) or not factors:
        changes.add("datacenter_replication_factors", "must not be empty")
        return _TOPOLOGY, None, None
    for datacenter, factor in factors.items():
        if not isinstance(factor, int) or isinstance(factor, bool) or factor <= 0:
            changes.add(
                "datacenter_replication_factors",
                f"has invalid replication factor: {datacenter}",
            )
    return _TOPOLOGY, None, factors


def _parse_realm_create(data: dict[str, Any]) -> Realm:
    changes = Changeset(data)
    name = changes.required_string("realm_name")
    if name is not None and not is_valid_realm_name(name):
        changes.add("realm_name", "has invalid format")
    pem = _check_public_key(changes)
    replication_class, factor, factors = _check_replication(changes)
    limit = changes.optional_int("device_registration_limit", minimum=0)
    retention = changes.optional_int("datastream_maximum_storage_retention", minimum=0)
    changes.raise_if_invalid()
    assert name is not None and pem is not None
    return Realm(
        name=name,
        jwt_public_key_pem=pem,
        replication_class=replication_class,
        replication_factor=factor,
        datacenter_replication_factors=factors,
        device_registration_limit=limit,
        datastream_maximum_storage_retention=retention or None,
    )


def _apply_realm_patch(realm: Realm, data: dict[str, Any]) -> Realm:
    changes = Changeset(data)
    if "jwt_public_key_pem" in data:
        pem = _check_public_key(changes)
        if pem is not None:
            realm.jwt_public_key_pem = pem
    if "device_registration_limit" in data:
        realm.device_registration_limit = changes.optional_int(
            "device_registration_limit", minimum=0
        )
    if "datastream_maximum_storage_retention" in data:
        retention = changes.optional_int("datastream_maximum_storage_retention", minimum=0)
        realm.datastream_maximum_storage_retention = retention or None
    changes.raise_if_invalid()
    return realm


async def _existing_realm(context: ApiContext, name: str) -> Realm:
    realm = await context.storage.realms.get(name)
    if realm is None:
        raise ApiError(404, "Realm not found")
    return realm


@router.get("/realms")
async def list_realms(context: Authorized) -> JsonResponse:
    return JsonResponse({"data": await context.storage.realms.list_names()})


@router.post("/realms", status_code=201)
async def create_realm(request: Request, context: Authorized) -> JsonResponse:
    realm = _parse_realm_create(await read_data_object(request))
    try:
        await context.storage.realms.create(realm)
    except AlreadyExists:
        raise ApiError(409, "Realm already exists") from None
    return JsonResponse(
        {"data": realm_to_json(realm)},
        status_code=201,
        headers={"location": f"/v1/realms/{realm.name}"},
    )


@router.get("/realms/{realm_name}")
async def get_realm(realm_name: str, context: Authorized) -> JsonResponse:
    return JsonResponse({"data": realm_to_json(await _existing_realm(context, realm_name))})


@router.patch("/realms/{realm_name}")
async def patch_realm(realm_name: str, request: Request, context: Authorized) -> JsonResponse:
    data = await read_data_object(request)
    realm = _apply_realm_patch(await _existing_realm(context, realm_name), data)
    await context.storage.realms.update(realm)
    return JsonResponse({"data": realm_to_json(realm)})


@router.delete("/realms/{realm_name}", status_code=204)
async def delete_realm(realm_name: str, context: Authorized) -> Response:
    if not context.settings.enable_realm_deletion:
        raise ApiError(405, "Realm deletion disabled")
    if await context.storage.realms.get(realm_name) is not None:
        _, connected = await context.storage.devices.count(realm_name)
        if connected:
            raise ApiError(422, "Realm still contains connected devices")
    if not await context.storage.realms.delete(realm_name):
        raise ApiError(404, "Realm not found")
    return Response(status_code=204)


@router.get("/realm-defaults/replication")
async def replication_defaults(context: Authorized) -> JsonResponse:
    return JsonResponse({"data": {"replication_class": "simple_strategy", "replication_factor": 1}})


@router.get("/version")
async def version(context: Authorized) -> JsonResponse:
    return JsonResponse({"data": __version__})
