"""`astraea appengine`: devices, their data and values sent to them, through AppEngine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from astraea.cli.api_client import DEFAULT_URL, ApiClient, describe_error
from astraea.cli.appengine_data import cell, sample_table, snapshot_rows
from astraea.cli.output import fail, print_json, print_table, print_text
from astraea.cli.realm_access import RealmAccess, RealmKeyOption, RealmOption, UrlOption
from astraea.core.interface import ValueType
from astraea.core.interface_parser import InterfaceValidationError, parse_interface
from astraea.core.values import InvalidValueError, value_from_json

app = typer.Typer(no_args_is_help=True)
devices = typer.Typer(no_args_is_help=True, help="List devices, read their data, send them values.")
app.add_typer(devices, name="devices")

# AppEngine's `links` are relative to the API root, as Astarte's gateway serves them.
_API_ROOT = "/appengine"
# How Astraea tells what became of a value sent to a device (Astarte answers 200 either way).
_DELIVERY_HEADER = "Astraea-Delivery"
# Types whose VALUE is taken verbatim, so that `42` can be a string and base64 stays text.
_VERBATIM_TYPES = (ValueType.STRING, ValueType.BINARYBLOB)
# Values may be negative numbers, which must not be taken for options.
_VALUE_COMMAND = {"ignore_unknown_options": True}

Device = Annotated[
    str, typer.Argument(metavar="DEVICE", help="A device id (an alias with --alias).")
]
ByAlias = Annotated[bool, typer.Option("--alias", help="DEVICE is an alias, not an id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
InterfaceName = Annotated[str, typer.Argument(metavar="INTERFACE")]


def _from_root(path: str) -> str:
    """Paths start at the interface root; the leading `/` may be left out."""
    return path if path.startswith("/") else "/" + path


ValuePath = Annotated[
    str, typer.Argument(metavar="PATH", callback=_from_root, help="e.g. /sensor1/value")
]
Value = Annotated[
    str,
    typer.Argument(metavar="VALUE", help="JSON when it parses (objects too), else a string."),
]
TypeOfValue = Annotated[
    ValueType | None,
    typer.Option(
        "--type",
        metavar="TYPE",
        help="A mapping type (double, integer, string, …, stringarray) to check VALUE against "
        "before sending; string and binaryblob take VALUE verbatim, so `42` can be a string.",
    ),
]


@app.callback()
def connection(
    ctx: typer.Context,
    realm: RealmOption = None,
    url: UrlOption = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_APPENGINE_TOKEN",
            help="An AppEngine JWT (data-snapshot also needs the Realm Management claim).",
        ),
    ] = None,
    private_key: RealmKeyOption = None,
) -> None:
    access = RealmAccess(url, realm, token, private_key, "ASTRAEA_APPENGINE_TOKEN")
    ctx.obj = _AppEngine(access)


@dataclass(frozen=True, slots=True)
class _AppEngine:
    access: RealmAccess

    @property
    def client(self) -> ApiClient:
        return self.access.client("appengine")

    def device_path(self, device: str, by_alias: bool) -> str:
        kind = "devices-by-alias" if by_alias else "devices"
        return f"{_API_ROOT}/v1/{self.access.realm}/{kind}/{quote(device, safe='')}"

    def values_path(self, device: str, by_alias: bool, interface: str, path: str = "") -> str:
        return f"{self.device_path(device, by_alias)}/interfaces/{quote(interface)}{quote(path)}"

    def write_value(
        self, method: str, device: str, by_alias: bool, interface: str, path: str, value: Any
    ) -> str | None:
        """POST (datastream) or PUT (property) one value to a device's interface path; what
        became of it as the server reports it (`delivered`, `pending` or `dropped`; None from
        a server that does not say, such as Astarte)."""
        path = self.values_path(device, by_alias, interface, path)
        delivery: str | None = self.client.checked(method, path, data=value).headers.get(
            _DELIVERY_HEADER
        )
        return delivery

    def listing(self, path: str, params: dict[str, str], *, follow: bool) -> Any:
        """A GET's `data`; a list is completed, when `follow`, by the pages `links.next` leads
        to (AppEngine pages device lists and long sample lists)."""
        body = _checked(self.client.request("GET", path, params=params), path)
        data = body["data"]
        while follow and isinstance(data, list) and (link := body.get("links", {}).get("next")):
            response = self.client.request("GET", _API_ROOT + link)
            # A sample list that filled its last page links on to none left: 404 Path not found.
            if response.status_code == 404:
                break
            body = _checked(response, _API_ROOT + link)
            data.extend(body["data"])
        return data


def _checked(response: httpx.Response, path: str) -> dict[str, Any]:
    """The JSON body of a successful GET; fails with the server's error otherwise."""
    if response.is_error:
        fail(f"GET {path}: {response.status_code} {describe_error(response)}")
    body: dict[str, Any] = response.json()
    return body


@devices.command("list")
def list_devices(
    ctx: typer.Context,
    details: Annotated[bool, typer.Option(help="Show each device's status.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most N devices.", show_default="all of them")
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Devices per request without --limit; the pages are followed to the end.",
            show_default="the server's, 1000",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List device ids, one per line, or a table of statuses with --details."""
    engine: _AppEngine = ctx.obj
    params = {"details": "true"} if details else {}
    if limit is not None or page_size is not None:
        params["limit"] = str(limit or page_size)
    found = engine.listing(
        f"{_API_ROOT}/v1/{engine.access.realm}/devices", params, follow=limit is None
    )
    if as_json:
        print_json(found)
    elif not details:
        for device_id in found:
            print_text(device_id)
    else:
        print_table(
            ["device", "connected", "last connection", "last disconnection", "aliases"],
            [
                (
                    status["id"],
                    cell(status["connected"]),
                    status["last_connection"],
                    status["last_disconnection"],
                    ", ".join(status["aliases"].values()),
                )
                for status in found
            ],
        )


@devices.command("show")
def show(ctx: typer.Context, device: Device, alias: ByAlias = False) -> None:
    """Print a device's status (introspection, connection, counters, aliases)."""
    engine: _AppEngine = ctx.obj
    print_json(engine.client.call("GET", engine.device_path(device, alias)))


@devices.command("data-snapshot")
def data_snapshot(
    ctx: typer.Context,
    device: Device,
    interface: Annotated[
        str | None, typer.Argument(metavar="INTERFACE", help="Only this interface.")
    ] = None,
    alias: ByAlias = False,
    as_json: AsJson = False,
) -> None:
    """Show the latest value of every path of the device's interfaces."""
    engine: _AppEngine = ctx.obj
    introspection = engine.client.call("GET", engine.device_path(device, alias))["introspection"]
    if interface is not None and interface not in introspection:
        fail(f"{interface} is not in the introspection of device {device}")
    names = [interface] if interface is not None else sorted(introspection)
    # Which paths hold values, and in which shape, depends on each interface's definition.
    definitions = engine.access.client("realm-management")
    rows: list[dict[str, object]] = []
    for name in names:
        major = introspection[name]["major"]
        document = definitions.call(
            "GET", f"/realmmanagement/v1/{engine.access.realm}/interfaces/{name}/{major}"
        )
        try:
            definition = parse_interface(document)
        except InterfaceValidationError as exc:
            fail(f"{name} v{major} as installed is not a valid interface: {exc.errors}")
        # limit=1: an object interface with a single path answers with its newest sample only.
        data = engine.listing(engine.values_path(device, alias, name), {"limit": "1"}, follow=False)
        rows.extend(
            {"interface": name, "path": path, "value": value, "timestamp": timestamp}
            for path, value, timestamp in snapshot_rows(definition, data)
        )
    if as_json:
        print_json(rows)
        return
    print_table(
        ["interface", "path", "value", "timestamp"],
        [(r["interface"], r["path"], cell(r["value"]), r["timestamp"]) for r in rows],
    )


@devices.command("get-samples")
def get_samples(
    ctx: typer.Context,
    device: Device,
    interface: InterfaceName,
    path: ValuePath,
    since: Annotated[
        str | None, typer.Option(metavar="ISO8601", help="From this time on (inclusive).")
    ] = None,
    to: Annotated[
        str | None, typer.Option(metavar="ISO8601", help="Before this time (exclusive).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="At most N samples: the newest first unless --since is given.",
            show_default="all",
        ),
    ] = None,
    alias: ByAlias = False,
    as_json: AsJson = False,
) -> None:
    """Show the samples of a datastream path (an object path gives one column per key)."""
    engine: _AppEngine = ctx.obj
    params = {"since": since, "to": to, "limit": None if limit is None else str(limit)}
    data = engine.listing(
        engine.values_path(device, alias, interface, path),
        {key: value for key, value in params.items() if value is not None},
        follow=limit is None,
    )
    if as_json or not isinstance(data, list):
        print_json(data)
        return
    columns, rows = sample_table(data)
    print_table(columns, rows)


@devices.command("send-data", context_settings=_VALUE_COMMAND)
def send_data(
    ctx: typer.Context,
    device: Device,
    interface: InterfaceName,
    path: ValuePath,
    value: Value,
    value_type: TypeOfValue = None,
    alias: ByAlias = False,
) -> None:
    """Send a value on a server-owned datastream (for an object, its JSON at the object path)."""
    engine: _AppEngine = ctx.obj
    value_sent = _parse_value(value, value_type)
    if engine.write_value("POST", device, alias, interface, path, value_sent) == "dropped":
        fail(
            f"not delivered: device {device} is not connected (or has no session to queue it "
            f"in) and {interface}{path} is unreliable, so the value was dropped; it is only "
            "stored on the server"
        )
    print_text(f"Sent to {interface}{path}.")


@devices.command("set-property", context_settings=_VALUE_COMMAND)
def set_property(
    ctx: typer.Context,
    device: Device,
    interface: InterfaceName,
    path: ValuePath,
    value: Value,
    value_type: TypeOfValue = None,
    alias: ByAlias = False,
) -> None:
    """Set a server-owned property; a disconnected device receives it when it reconnects."""
    engine: _AppEngine = ctx.obj
    value_set = _parse_value(value, value_type)
    if engine.write_value("PUT", device, alias, interface, path, value_set) == "pending":
        print_text(f"Set {interface}{path}; device {device} gets it when it connects.")
    else:
        print_text(f"Set {interface}{path}.")


@devices.command("unset-property")
def unset_property(
    ctx: typer.Context,
    device: Device,
    interface: InterfaceName,
    path: ValuePath,
    alias: ByAlias = False,
) -> None:
    """Unset a server-owned property (its mapping must allow unset)."""
    engine: _AppEngine = ctx.obj
    engine.client.call("DELETE", engine.values_path(device, alias, interface, path))
    print_text(f"Unset {interface}{path}.")


def _parse_value(text: str, value_type: ValueType | None) -> object:
    """VALUE as JSON when it parses, else as a string; with a type, checked against it.

    Text that opens like a JSON object or array but does not parse is refused rather than
    sent as a string, which is never what was meant.
    """
    if value_type in _VERBATIM_TYPES:
        value: object = text
    else:
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            if text.lstrip().startswith(("{", "[")):
                fail(f"VALUE is not valid JSON: {exc}")
            value = text
    if value_type is not None:
        try:
            value_from_json(value_type, value)
        except InvalidValueError:
            fail(f"VALUE {text!r} is not a valid {value_type.value}")
    return value


def _no_constant(name: str) -> object:
    """JSON has no NaN or Infinity: such a VALUE is a string."""
    raise ValueError(name)
