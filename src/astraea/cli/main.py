"""Entry point of the `astraea` command: one sub-command group per API set or concern."""

from __future__ import annotations

from typing import Annotated

import typer

from astraea import __version__
from astraea.cli import appengine, housekeeping, pairing, realm_management, utils
from astraea.cli.up import serve, up

app = typer.Typer(
    name="astraea",
    help="Astraea: an Astarte-compatible IoT data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"astraea {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Astraea: an Astarte-compatible IoT data platform."""


app.command()(up)
app.command()(serve)
app.add_typer(utils.app, name="utils", help="Keys, tokens and device ids.")
app.add_typer(housekeeping.app, name="housekeeping", help="Realms (Housekeeping API).")
app.add_typer(
    realm_management.app,
    name="realm-management",
    help="Interfaces, triggers and trigger delivery policies (Realm Management API).",
)
app.add_typer(pairing.app, name="pairing", help="Device registration (Pairing API).")
app.add_typer(appengine.app, name="appengine", help="Devices and their data (AppEngine API).")


def main() -> None:
    app()
