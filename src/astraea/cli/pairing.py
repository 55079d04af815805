"""`astraea pairing`: register devices as an agent, and read a device's view of Pairing."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from astraea.cli.api_client import DEFAULT_URL, ApiClient
from astraea.cli.output import fail, print_json, print_text
from astraea.cli.realm_access import RealmAccess, RealmKeyOption, RealmOption, UrlOption
from astraea.core.payloads import InvalidIntrospection, decode_introspection

app = typer.Typer(no_args_is_help=True)
agent = typer.Typer(no_args_is_help=True, help="Register and unregister devices (agent JWT).")
device = typer.Typer(no_args_is_help=True, help="What a device sees, with its credentials secret.")
app.add_typer(agent, name="agent")
app.add_typer(device, name="device")

DeviceId = Annotated[str, typer.Argument(metavar="DEVICE_ID")]


@app.callback()
def connection(
    ctx: typer.Context,
    realm: RealmOption = None,
    url: UrlOption = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="ASTRAEA_PAIRING_TOKEN", help="A Pairing JWT.")
    ] = None,
    private_key: RealmKeyOption = None,
) -> None:
    ctx.obj = RealmAccess(url, realm, token, private_key, "ASTRAEA_PAIRING_TOKEN")


@agent.command("register")
def register(
    ctx: typer.Context,
    device_id: DeviceId,
    introspection: Annotated[
        str | None,
        typer.Option(
            metavar="NAME:MAJOR:MINOR;...",
            help="The interfaces the device will declare, as in its MQTT introspection.",
        ),
    ] = None,
) -> None:
    """Register a device and print its credentials secret (alone, so it can be captured)."""
    access: RealmAccess = ctx.obj
    body: dict[str, object] = {"hw_id": device_id}
    if introspection:
        try:
            declared = decode_introspection(introspection.encode())
        except InvalidIntrospection as exc:
            fail(f"--introspection: {exc}")
        body["initial_introspection"] = {
            name: {"major": major, "minor": minor} for name, (major, minor) in declared.items()
        }
    data = access.client("pairing").call(
        "POST", f"/pairing/v1/{access.realm}/agent/devices", data=body
    )
    print_text(data["credentials_secret"])


@agent.command("unregister")
def unregister(ctx: typer.Context, device_id: DeviceId) -> None:
    """Reset a device's credentials, so it can be registered again (its data stays)."""
    access: RealmAccess = ctx.obj
    access.client("pairing").call(
        "DELETE", f"/pairing/v1/{access.realm}/agent/devices/{quote(device_id, safe='')}"
    )
    print_text(f"Device {device_id} unregistered.")


@device.command("info")
def info(
    ctx: typer.Context,
    device_id: DeviceId,
    secret: Annotated[
        str,
        typer.Option(envvar="ASTRAEA_CREDENTIALS_SECRET", help="The device's credentials secret."),
    ],
) -> None:
    """Show a device's status and broker URL, as the device itself asks for them."""
    access: RealmAccess = ctx.obj
    client = ApiClient(access.url.rstrip("/"), secret)
    print_json(
        client.call("GET", f"/pairing/v1/{access.realm}/devices/{quote(device_id, safe='')}")
    )
