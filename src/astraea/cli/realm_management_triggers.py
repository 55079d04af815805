"""`astraea realm-management triggers|policies`: a realm's triggers and their delivery
policies. Both are named JSON documents with the same four verbs (as in astartectl), so one
builder makes both groups; the server validates the documents and its errors are shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote

import typer

from astraea.cli.output import fail, print_json, print_text


class RealmCaller(Protocol):
    """What the commands need from the group's context object."""

    def call(self, method: str, path: str, data: Any = None) -> Any: ...


def named_documents(collection: str, noun: str, example: str) -> typer.Typer:
    """A `list|show|install|delete` group over `/<collection>` of the realm; `noun` names
    one document in messages, `example` is the JSON a help text shows."""
    group = typer.Typer(
        no_args_is_help=True, help=f"List, show, install and delete {noun}s of the realm."
    )

    def item(name: str) -> str:
        return f"/{collection}/{quote(name, safe='')}"

    @group.command("list", help=f"List the names of the installed {noun}s.")
    def list_names(ctx: typer.Context) -> None:
        realm: RealmCaller = ctx.obj
        for name in realm.call("GET", f"/{collection}"):
            print_text(name)

    @group.command("show", help=f"Print an installed {noun}.")
    def show(ctx: typer.Context, name: str) -> None:
        realm: RealmCaller = ctx.obj
        print_json(realm.call("GET", item(name)))

    @group.command("install", help=f"Install a {noun} from a JSON file, e.g. {example}")
    def install(
        ctx: typer.Context,
        file: Annotated[Path, typer.Argument(metavar="FILE")],
    ) -> None:
        realm: RealmCaller = ctx.obj
        installed = realm.call("POST", f"/{collection}", _read_object(file))
        print_text(f"Installed {noun} {installed['name']}.")

    @group.command("delete", help=f"Delete an installed {noun}.")
    def delete(ctx: typer.Context, name: str) -> None:
        realm: RealmCaller = ctx.obj
        realm.call("DELETE", item(name))
        print_text(f"Deleted {noun} {name}.")

    return group


def _read_object(path: Path) -> dict[str, Any]:
    """The file's JSON object; what it must contain is the server's to check."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}")
    if not isinstance(document, dict):
        fail(f"{path} must hold a JSON object")
    return document


triggers = named_documents(
    "triggers",
    "trigger",
    '{"name": "on-connect", "action": {"http_url": "http://127.0.0.1:8080/hook"}, '
    '"simple_triggers": [{"type": "device_trigger", "on": "device_connected"}]}',
)
policies = named_documents(
    "policies",
    "trigger delivery policy",
    '{"name": "retry", "maximum_capacity": 100, "error_handlers": '
    '[{"on": "any_error", "strategy": "retry"}], "retry_times": 3}',
)
