"""`astraea housekeeping`: realms, through the Housekeeping API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astraea.cli.api_client import DEFAULT_URL, ApiClient, default_housekeeping_key
from astraea.cli.output import fail, print_json, print_text

app = typer.Typer(no_args_is_help=True)
realms = typer.Typer(no_args_is_help=True, help="Create, list and show realms.")
app.add_typer(realms, name="realms")


@app.callback()
def connection(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="ASTRAEA_URL", help="Platform base URL.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="ASTRAEA_HOUSEKEEPING_TOKEN", help="A Housekeeping JWT.")
    ] = None,
    private_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ASTRAEA_HOUSEKEEPING_KEY",
            help="Housekeeping private key to sign a token with "
            "[default: astraea-data/keys/housekeeping_private.pem].",
        ),
    ] = None,
) -> None:
    if token is None and private_key is None:
        private_key = default_housekeeping_key()
        if not private_key.exists():
            fail(f"give --token or --private-key (no key found at {private_key})")
    ctx.obj = ApiClient.for_service(url, "housekeeping", token, private_key)


@realms.command("create")
def create(
    ctx: typer.Context,
    name: str,
    public_key: Annotated[
        Path, typer.Option(help="The realm's PEM public key, which verifies its tokens.")
    ],
    device_registration_limit: Annotated[int | None, typer.Option(min=0)] = None,
    datastream_maximum_storage_retention: Annotated[
        int | None, typer.Option(min=0, help="Seconds.")
    ] = None,
) -> None:
    """Create a realm."""
    try:
        pem = public_key.read_text()
    except OSError as exc:
        fail(f"cannot read {public_key}: {exc.strerror}")
    body: dict[str, object] = {"realm_name": name, "jwt_public_key_pem": pem}
    if device_registration_limit is not None:
        body["device_registration_limit"] = device_registration_limit
    if datastream_maximum_storage_retention is not None:
        body["datastream_maximum_storage_retention"] = datastream_maximum_storage_retention
    client: ApiClient = ctx.obj
    client.call("POST", "/housekeeping/v1/realms", data=body)
    print_text(f"Realm {name} created.")


@realms.command("list")
def list_realms(ctx: typer.Context) -> None:
    """List realm names."""
    client: ApiClient = ctx.obj
    for name in client.call("GET", "/housekeeping/v1/realms"):
        print_text(name)


@realms.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """Show a realm's configuration."""
    client: ApiClient = ctx.obj
    print_json(client.call("GET", f"/housekeeping/v1/realms/{name}"))
