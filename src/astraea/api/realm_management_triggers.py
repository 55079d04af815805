"""Realm Management API: triggers and their delivery policies (claim `a_rma`).

Installing a trigger answers, in Astarte's order: 422 for an invalid document, 409 for a taken
name, 404/400 for a data trigger its interface cannot serve, 404 for a missing policy.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from astraea.api.body import read_data, read_data_object
from astraea.api.errors import ApiError, ValidationFailed
from astraea.api.realm_management import PREFIX, Authorized
from astraea.api.responses import JsonResponse
from astraea.bus.messages import TriggersChanged
from astraea.core.trigger_policies import PolicyValidationError, parse_policy, policy_to_json
from astraea.core.triggers import (
    DataTrigger,
    Trigger,
    TriggerInterfaceError,
    TriggerValidationError,
    check_data_trigger_interface,
    parse_trigger,
)
from astraea.storage.base import AlreadyExists, PolicyInUse, PolicyNotFound

logger = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, tags=["realm management"])

_TRIGGER_NOT_FOUND = "Trigger not found"
_TRIGGER_EXISTS = "Trigger already exists"
_POLICY_NOT_FOUND = "Trigger policy not found"


@router.get("/triggers")
async def list_triggers(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": await auth.context.storage.triggers.list_names(auth.realm.name)})


@router.post("/triggers", status_code=201)
async def install_trigger(request: Request, auth: Authorized) -> JsonResponse:
    realm = auth.realm.name
    storage = auth.context.storage
    try:
        trigger = parse_trigger(await read_data_object(request), realm=realm)
    except TriggerValidationError as exc:
        raise ValidationFailed(exc.errors) from None
    if await storage.triggers.get(realm, trigger.name) is not None:
        raise ApiError(409, _TRIGGER_EXISTS)
    await _check_interfaces(auth, trigger)
    try:
        await storage.triggers.install(realm, trigger)
    except AlreadyExists:
        raise ApiError(409, _TRIGGER_EXISTS) from None
    except PolicyNotFound:
        raise ApiError(404, _POLICY_NOT_FOUND) from None
    await _announce_change(auth)
    return JsonResponse(
        {"data": trigger.to_json()},
        status_code=201,
        headers={"location": f"/v1/{realm}/triggers/{quote(trigger.name, safe='')}"},
    )


async def _check_interfaces(auth: Authorized, trigger: Trigger) -> None:
    """Every data trigger naming an interface needs it installed, and able to produce its
    events (Astarte checks them in order and reports the first failure)."""
    for simple in trigger.simple_triggers:
        if not isinstance(simple, DataTrigger) or simple.interface_major is None:
            continue  # device triggers, and data triggers on any interface (`*`)
        interface = await auth.context.storage.interfaces.get(
            auth.realm.name, simple.interface_name, simple.interface_major
        )
        if interface is None:
            raise ApiError(404, "Interface not found")
        try:
            check_data_trigger_interface(simple, interface)
        except TriggerInterfaceError as exc:
            raise ApiError(400, exc.detail) from None


@router.get("/triggers/{name}")
async def get_trigger(name: str, auth: Authorized) -> JsonResponse:
    installed = await auth.context.storage.triggers.get(auth.realm.name, name)
    if installed is None:
        raise ApiError(404, _TRIGGER_NOT_FOUND)
    return JsonResponse({"data": installed.trigger.to_json()})


@router.delete("/triggers/{name}", status_code=204)
async def delete_trigger(name: str, auth: Authorized) -> Response:
    if not await auth.context.storage.triggers.delete(auth.realm.name, name):
        raise ApiError(404, _TRIGGER_NOT_FOUND)
    await _announce_change(auth)
    return Response(status_code=204)


async def _announce_change(auth: Authorized) -> None:
    """Ingestion reloads the realm's triggers at once instead of at its next poll (which
    catches the change anyway, should the broadcast be lost)."""
    try:
        await auth.context.bus.broadcast(TriggersChanged(auth.realm.name))
    except Exception:
        logger.exception("could not announce the trigger change in %s", auth.realm.name)


@router.get("/policies")
async def list_policies(auth: Authorized) -> JsonResponse:
    return JsonResponse({"data": await auth.context.storage.policies.list_names(auth.realm.name)})


@router.post("/policies", status_code=201)
async def install_policy(request: Request, auth: Authorized) -> JsonResponse:
    try:
        policy = parse_policy(await read_data(request))
    except PolicyValidationError:
        # Astarte reports no field detail for policies.
        raise ApiError(422, "Invalid trigger policy") from None
    try:
        await auth.context.storage.policies.install(auth.realm.name, policy)
    except AlreadyExists:
        raise ApiError(409, "Policy already exists") from None
    return JsonResponse(
        {"data": policy_to_json(policy)},
        status_code=201,
        headers={"location": f"/v1/{auth.realm.name}/policies/{quote(policy.name, safe='')}"},
    )


@router.get("/policies/{name}")
async def get_policy(name: str, auth: Authorized) -> JsonResponse:
    policy = await auth.context.storage.policies.get(auth.realm.name, name)
    if policy is None:
        raise ApiError(404, _POLICY_NOT_FOUND)
    return JsonResponse({"data": policy_to_json(policy)})


@router.delete("/policies/{name}", status_code=204)
async def delete_policy(name: str, auth: Authorized) -> Response:
    """Always synchronous: `async_operation` is accepted and has nothing left to defer."""
    try:
        deleted = await auth.context.storage.policies.delete(auth.realm.name, name)
    except PolicyInUse:
        raise ApiError(
            409, "Cannot delete policy as it is being currently used by triggers"
        ) from None
    if not deleted:
        raise ApiError(404, _POLICY_NOT_FOUND)
    return Response(status_code=204)
