"""`astraea housekeeping`: realms, through the Housekeeping API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

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
            help="Housekeeping private key to sign a token with (the data folder is "
            "$ASTRAEA_DATA_DIR when set).",
            show_default="astraea-data/keys/housekeeping_private.pem",
        ),
    ] = None,
) -> None:
    ctx.obj = _Housekeeping(url, token, private_key)


@dataclass(frozen=True, slots=True)
class _Housekeeping:
    """Credentials are checked when a command calls the API, not in the group callback, so
    `--help` of any command works without a key."""

    url: str
    token: str | None
    private_key: Path | None

    def call(self, method: str, path: str, *, data: Any = None) -> Any:
        return self.client().call(method, f"/housekeeping/v1{path}", data=data)

    def client(self) -> ApiClient:
        private_key = self.private_key
        if self.token is None and private_key is None:
            private_key = default_housekeeping_key()
            if not private_key.exists():
                fail(f"give --token or --private-key (no key found at {private_key})")
        return ApiClient.for_service(self.url, "housekeeping", self.token, private_key)


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
    housekeeping: _Housekeeping = ctx.obj
    housekeeping.call("POST", "/realms", data=body)
    print_text(f"Realm {name} created.")


@realms.command("list")
def list_realms(ctx: typer.Context) -> None:
    """List realm names."""
    housekeeping: _Housekeeping = ctx.obj
    for name in housekeeping.call("GET", "/realms"):
        print_text(name)


@realms.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """Show a realm's configuration."""
    housekeeping: _Housekeeping = ctx.obj
    print_json(housekeeping.call("GET", f"/realms/{name}"))
