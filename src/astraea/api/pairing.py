"""Pairing API: agents register devices (JWT claim `a_pa`); devices, authenticated by their
credentials secret, read their status and obtain and check MQTT client certificates.

Where Astarte leaves an outcome unmapped (a server error), Astraea answers:
- registration in a realm at its device registration limit: 422 `Device registration limit
  reached`. The request is well authorized but cannot be honoured in the realm's current
  state, like `Device already registered`; a 401/403 would wrongly tell the agent that its
  token is at fault, and 422 is the status the official SDKs already treat as a refused
  registration.
- a credentials request from a device whose credentials are inhibited: 403 `Forbidden`. The
  SDKs raise an authorization error on 401/403 instead of retrying a request that cannot
  succeed until an operator lifts the inhibition.
- an invalid device id in a path: 400 `Bad request`.

A certificate is revoked exactly when it is not the device's current one (its serial differs
from the serial recorded by the last credentials request): a new certificate supersedes the
previous one, while the latest one, which the device stores and connects with, stays valid.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from astraea import __version__
from astraea.api.auth import bearer_token
from astraea.api.body import read_data_object
from astraea.api.changeset import Changeset
from astraea.api.context import ApiContext, get_context
from astraea.api.errors import ApiError, ValidationFailed, bad_request
from astraea.api.realm_auth import RealmRequest, realm_authorizer
from astraea.api.responses import JsonResponse
from astraea.bus.base import DEVICE_MESSAGES, device_key
from astraea.bus.messages import DeviceMessage, Registered
from astraea.core.device_id import InvalidDeviceId, canonical_device_id
from astraea.pairing.ca import InvalidCSR
from astraea.pairing.cert_verify import verify_device_certificate
from astraea.pairing.secrets import generate_credentials_secret, hash_secret, verify_secret
from astraea.storage.base import AlreadyRegistered, Device, RegistrationLimitReached

PREFIX = "/pairing/v1/{realm_name}"
PROTOCOL = "astarte_mqtt_v1"

AgentAuthorized = Annotated[
    RealmRequest, Depends(realm_authorizer("a_pa", ApiError(403, "Forbidden")))
]
router = APIRouter(prefix=PREFIX, tags=["pairing"])


@dataclass(slots=True)
class DeviceCaller:
    """A device request whose realm exists and which presents some credentials secret."""

    context: ApiContext
    realm: str
    secret: str


async def _device_caller(request: Request, realm_name: str) -> DeviceCaller:
    context = get_context(request)
    if await context.storage.realms.get(realm_name) is None:
        raise ApiError(403, "Forbidden")
    secret = bearer_token(request.headers.get("authorization"))
    if secret is None:
        raise ApiError(401, "Unauthorized")
    return DeviceCaller(context, realm_name, secret)


DeviceAuthenticated = Annotated[DeviceCaller, Depends(_device_caller)]


@router.post("/agent/devices", status_code=201)
async def register_device(request: Request, auth: AgentAuthorized) -> JsonResponse:
    device_id, introspection = _parse_registration(await read_data_object(request))
    secret = generate_credentials_secret()
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    now = datetime.now(UTC)
    try:
        await auth.context.storage.devices.register(
            auth.realm.name, device_id, secret_hash, introspection, now
        )
    except AlreadyRegistered:
        raise ApiError(422, "Device already registered") from None
    except RegistrationLimitReached:
        raise ApiError(422, "Device registration limit reached") from None
    # Through ingestion, in the device's order, for `device_registered` triggers.
    registered = DeviceMessage(auth.realm.name, device_id, Registered(), now)
    await auth.context.bus.publish(
        DEVICE_MESSAGES, device_key(auth.realm.name, device_id), registered
    )
    return JsonResponse({"data": {"credentials_secret": secret}}, status_code=201)


@router.delete("/agent/devices/{device_id}", status_code=204)
async def unregister_device(device_id: str, auth: AgentAuthorized) -> Response:
    # As in Astarte, only registration and the device routes take extended ids.
    canonical = _path_device_id(device_id, allow_extended=False)
    if not await auth.context.storage.devices.unregister(auth.realm.name, canonical):
        raise ApiError(404, "Device not found")
    return Response(status_code=204)


@router.get("/devices/{device_id}")
async def device_info(device_id: str, caller: DeviceAuthenticated) -> JsonResponse:
    device = await _authenticate(caller, device_id)
    broker = {"broker_url": caller.context.settings.broker_url}
    return JsonResponse(
        {
            "data": {
                "version": __version__,
                "status": _status(device),
                "protocols": {PROTOCOL: broker},
            }
        }
    )


@router.post("/devices/{device_id}/protocols/{protocol}/credentials", status_code=201)
async def request_credentials(
    device_id: str, protocol: str, request: Request, caller: DeviceAuthenticated
) -> JsonResponse:
    csr = await _read_pem(request, protocol, "csr")
    device = await _authenticate(caller, device_id)
    if device.credentials_inhibited:
        raise ApiError(403, "Forbidden")
    try:
        issued = caller.context.ca.issue_device_certificate(csr, caller.realm, device.device_id)
    except InvalidCSR:
        raise ValidationFailed({"csr": ["is not a valid PEM CSR"]}) from None
    await caller.context.storage.devices.record_credentials(
        caller.realm,
        device.device_id,
        str(issued.serial),
        issued.aki,
        request.client.host if request.client else None,
        datetime.now(UTC),
    )
    return JsonResponse({"data": {"client_crt": issued.pem}}, status_code=201)


@router.post("/devices/{device_id}/protocols/{protocol}/credentials/verify")
async def verify_credentials(
    device_id: str, protocol: str, request: Request, caller: DeviceAuthenticated
) -> JsonResponse:
    certificate = await _read_pem(request, protocol, "client_crt")
    device = await _authenticate(caller, device_id)
    result = verify_device_certificate(
        caller.context.ca,
        certificate,
        datetime.now(UTC),
        lambda serial: str(serial) != device.cert_serial,
    )
    return JsonResponse({"data": result.as_data()})


def _parse_registration(data: dict[str, Any]) -> tuple[str, dict[str, tuple[int, int]]]:
    changes = Changeset(data)
    hw_id = changes.required_string("hw_id")
    device_id = None
    if hw_id is not None:
        try:
            device_id = canonical_device_id(hw_id, allow_extended=True)
        except InvalidDeviceId:
            changes.add("hw_id", "is not a valid base64 encoded 128 bits id")
    introspection = _parse_introspection(changes)
    changes.raise_if_invalid()
    assert device_id is not None
    return device_id, introspection


def _parse_introspection(changes: Changeset) -> dict[str, tuple[int, int]]:
    field = "initial_introspection"
    declared = changes.data.get(field)
    if declared is None:
        return {}
    if not isinstance(declared, dict):
        changes.add(field, "is invalid")
        return {}
    introspection = {}
    for name, versions in declared.items():
        major = _version(versions, "major")
        minor = _version(versions, "minor")
        if major is None or minor is None:
            changes.add(field, f"has invalid format for interface {name}")
        elif major < 0 or minor < 0:
            changes.add(field, f"has negative versions in interface {name}")
        else:
            introspection[name] = (major, minor)
    return introspection


def _version(versions: object, key: str) -> int | None:
    value = versions.get(key) if isinstance(versions, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _path_device_id(raw: str, *, allow_extended: bool) -> str:
    try:
        return canonical_device_id(raw, allow_extended=allow_extended)
    except InvalidDeviceId:
        raise bad_request() from None


async def _authenticate(caller: DeviceCaller, device_id: str) -> Device:
    """The device named in the path, once the caller's secret proves to be its own.

    A device whose secret was reset by unregistration has no secret to match, so every
    secret is refused with 403 like a wrong one.
    """
    canonical = _path_device_id(device_id, allow_extended=True)
    device = await caller.context.storage.devices.get(caller.realm, canonical)
    if device is None:
        raise ApiError(404, "Device not found")
    stored = device.credentials_secret_hash
    if stored is None or not await asyncio.to_thread(verify_secret, caller.secret, stored):
        raise ApiError(403, "Forbidden")
    return device


async def _read_pem(request: Request, protocol: str, field: str) -> str:
    """The PEM text under `data.<field>` of a request for `protocol`, the only one served."""
    if protocol != PROTOCOL:
        raise bad_request()
    changes = Changeset(await read_data_object(request))
    pem = changes.required_string(field)
    changes.raise_if_invalid()
    assert pem is not None
    return pem


def _status(device: Device) -> str:
    if device.credentials_inhibited:
        return "inhibited"
    return "confirmed" if device.first_credentials_request is not None else "pending"
