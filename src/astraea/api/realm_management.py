"""Realm Management API: a realm's interfaces and configuration (claim `a_rma`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from astraea import __version__
from astraea.api.auth import parse_public_key
from astraea.api.body import read_data, read_data_object
from astraea.api.errors import ApiError, ValidationFailed
from astraea.api.realm_auth import RealmRequest, realm_authorizer
from astraea.api.responses import JsonResponse
from astraea.core.interface import Interface
from astraea.core.interface_parser import (
    InterfaceValidationError,
    OverlappingEndpointsError,
    parse_interface,
)
from astraea.core.minor_update import MinorUpdateError, check_minor_update
from astraea.storage.base import AlreadyExists

PREFIX = "/realmmanagement/v1/{realm_name}"

Authorized = Annotated[RealmRequest, Depends(realm_authorizer("a_rma", ApiError(403, "Forbidden")))]
router = APIRouter(prefix=PREFIX, tags=["realm management"])


def _parse(data: object) -> Interface:
    try:
        return parse_interface(data)
    except OverlappingEndpointsError:
        raise ApiError(422, "Overlapping endpoints in interface mappings") from None
    except InterfaceValidationError as exc:
        raise ValidationFailed(exc.errors) from None


def _check_retention(interface: Interface, maximum: int | None) -> None:
    if not maximum:
        return
    for mapping in interface.mappings:
        if mapping.database_retention_ttl is not None and mapping.database_retention_ttl > maximum:
            raise ApiError(422, "database_retention_ttl exceeds the maximum storage retention")


def _major(raw: str) -> int:
    if not raw.isdigit():
        raise ApiError(404, "Invalid major version")
    return int(raw)


@router.get("/interfaces")
async def list_interfaces(auth: Authorized, detailed: bool = False) -> JsonResponse:
    repo = auth.context.storage.interfaces
    if detailed:
        interfaces = await repo.list_all(auth.realm.name)
        return JsonResponse({"data": [i.to_json() for i in interfaces]})
    return JsonResponse({"data": await repo.list_names(auth.realm.name)})


@router.post("/interfaces", status_code=201)
async def install_interface(request: Request, auth: Authorized) -> Response:
    interface = _parse(await read_data(request))
    _check_retention(interface, auth.realm.datastream_maximum_storage_retention)
    repo = auth.context.storage.interfaces
    if await repo.find_name_collision(auth.realm.name, interface.name):
        raise ApiError(
            409,
            "Interface name collision detected. Make sure that the difference between two "
            "interface names is not limited to the casing or the presence of hyphens.",
        )
    try:
        await repo.install(auth.realm.name, interface)
    except AlreadyExists:
        raise ApiError(409, "Interface already exists") from None
    location = f"/v1/{auth.realm.name}/interfaces/{interface.name}/{interface.major}"
    return Response(status_code=201, headers={"location": location})


@router.get("/interfaces/{name}")
async def interface_majors(name: str, auth: Authorized) -> JsonResponse:
    majors = await auth.context.storage.interfaces.list_majors(auth.realm.name, name)
    if not majors:
        raise ApiError(404, "Interface not found")
    return JsonResponse({"data": majors})


@router.get("/interfaces/{name}/{major}")
async def get_interface(name: str, major: str, auth: Authorized) -> JsonResponse:
    interface = await auth.context.storage.interfaces.get(auth.realm.name, name, _major(major))
    if interface is None:
        raise ApiError(404, "Interface not found")
    return JsonResponse({"data": interface.to_json()})


@router.put("/interfaces/{name}/{major}", status_code=204)
async def update_interface(name: str, major: str, request: Request, auth: Authorized) -> Response:
    major_number = _major(major)
    interface = _parse(await read_data(request))
    if interface.name != name:
        raise ApiError(409, "Interface name doesn't match the one in the interface json")
    if interface.major != major_number:
        raise ApiError(409, "Interface major version doesn't match the one in the interface json")
    repo = auth.context.storage.interfaces
    installed = await repo.get(auth.realm.name, name, major_number)
    if installed is None:
        raise ApiError(404, "Interface major not found")
    _check_retention(interface, auth.realm.datastream_maximum_storage_retention)
    try:
        check_minor_update(installed, interface)
    except MinorUpdateError as exc:
        raise ApiError(409, exc.detail) from None
    await repo.replace(auth.realm.name, interface)
    return Response(status_code=204)


@router.delete("/interfaces/{name}/{major}", status_code=204)
async def delete_interface(name: str, major: str, auth: Authorized) -> Response:
    major_number = _major(major)
    repo = auth.context.storage.interfaces
    if await repo.get(auth.realm.name, name, major_number) is None:
        raise ApiError(404, "Interface not found")
    if major_number != 0:
        raise ApiError(403, "Interface can't be deleted")
    triggers = auth.context.storage.triggers
    if await repo.is_used_by_devices(auth.realm.name, name, major_number) or (
        await triggers.is_interface_used_by_triggers(auth.realm.name, name, major_number)
    ):
        raise ApiError(403, "Interface can't be deleted since it's currently used")
    await repo.delete(auth.realm.name, name, major_number)
    return Response(status_code=204)


@router.get("/config/auth")
async def get_auth_config(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": {"jwt_public_key_pem": auth.realm.jwt_public_key_pem}})


@router.put("/config/auth", status_code=204)
async def put_auth_config(request: Request, auth: Authorized) -> Response:
    data = await read_data_object(request)
    pem = data.get("jwt_public_key_pem")
    if not isinstance(pem, str) or parse_public_key(pem) is None:
        raise ValidationFailed({"jwt_public_key_pem": ["is not a valid PEM public key"]})
    auth.realm.jwt_public_key_pem = pem
    await auth.context.storage.realms.update(auth.realm)
    return Response(status_code=204)


@router.get("/config/device_registration_limit")
async def get_registration_limit(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": auth.realm.device_registration_limit})


@router.get("/config/datastream_maximum_storage_retention")
async def get_maximum_retention(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": auth.realm.datastream_maximum_storage_retention or 0})


@router.get("/version")
async def realm_version(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": __version__})
