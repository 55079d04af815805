"""Entry point of the `astraea` command: one sub-command group per API set or concern."""

from __future__ import annotations

import typer

from astraea.cli import appengine, housekeeping, pairing, realm_management, utils
from astraea.cli.up import serve, up

app = typer.Typer(
    name="astraea",
    help="Astraea: an Astarte-compatible IoT data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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
