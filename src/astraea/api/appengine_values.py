"""AppEngine interface-values routes (claim `a_aea`): GET values, PUT/POST server-owned
values, DELETE (unset) server-owned properties, for a device named by id, by alias, or by id
within a group.

The same three handlers serve every device reference; which one a request used is read from
its path parameters. Reading lives in `appengine_values_read`, writing in
`appengine_values_write`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from astraea.api.appengine_devices import PREFIX, Authorized
from astraea.api.appengine_values_read import ValueReader, next_link, parse_query
from astraea.api.appengine_values_target import ValueTarget, locate_device, resolve_target
from astraea.api.appengine_values_write import DELIVERY_HEADER, ValueWriter
from astraea.api.body import read_data
from astraea.api.realm_auth import RealmRequest
from astraea.api.responses import JsonResponse

router = APIRouter(prefix=PREFIX, tags=["appengine"])

_DEVICE_PATHS = (
    "/devices/{device_id}",
    "/devices-by-alias/{alias}",
    "/groups/{group}/devices/{device_id}",
)
_VALUE_PATHS = ("/interfaces/{interface}", "/interfaces/{interface}/{path:path}")
# Links are relative to the API root, as Astarte's are (its gateway strips the prefix).
_API_ROOT = "/appengine"


async def get_values(request: Request, auth: Authorized) -> JsonResponse:
    """Query options are checked first, as Astarte does, then device, interface and path."""
    query = parse_query(request.query_params)
    target = await _target(request, auth)
    reader = ValueReader(
        auth.context.storage.values,
        query,
        max_limit=auth.context.settings.appengine_max_results_limit,
        now=datetime.now(UTC),
    )
    reply = await reader.read(target)
    body: dict[str, object] = {"data": reply.data}
    if reply.metadata is not None:
        body["metadata"] = reply.metadata
    if reply.next_bound is not None:
        base = request.scope["raw_path"].decode("ascii").removeprefix(_API_ROOT)
        body["links"] = {"next": next_link(base, request.query_params, reply.next_bound)}
    return JsonResponse(body)


async def write_values(request: Request, auth: Authorized) -> JsonResponse:
    """200 with the `data` as sent; the body is read before anything is looked up, so a
    malformed one is a 400 whatever it addresses."""
    raw = await read_data(request)
    delivery = await _writer(auth).write(await _target(request, auth), raw)
    return JsonResponse({"data": raw}, headers={DELIVERY_HEADER: delivery.value})


async def unset_values(request: Request, auth: Authorized) -> Response:
    await _writer(auth).unset(await _target(request, auth))
    return Response(status_code=204)


def _add_routes() -> None:
    for device_path in _DEVICE_PATHS:
        for value_path in _VALUE_PATHS:
            route = device_path + value_path
            router.add_api_route(route, get_values, methods=["GET"])
            # One route per method, so each gets its own OpenAPI operation id.
            router.add_api_route(route, write_values, methods=["PUT"])
            router.add_api_route(route, write_values, methods=["POST"])
            router.add_api_route(route, unset_values, methods=["DELETE"], status_code=204)


_add_routes()


async def _target(request: Request, auth: RealmRequest) -> ValueTarget:
    params = request.path_params
    if "alias" in params:
        device = await locate_device(auth, params["alias"], by_alias=True)
    else:
        device = await locate_device(auth, params["device_id"], group=params.get("group"))
    return await resolve_target(auth, device, params["interface"], params.get("path", ""))


def _writer(auth: RealmRequest) -> ValueWriter:
    return ValueWriter(auth.context.storage.values, auth.context.commands, auth.realm)
