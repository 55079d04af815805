"""`astraea realm-management`: a realm's interfaces, triggers and trigger delivery policies,
through the Realm Management API."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import track

from astraea.cli.api_client import DEFAULT_URL, ApiClient
from astraea.cli.output import fail, print_json, print_table, print_text
from astraea.cli.realm_access import RealmAccess, RealmKeyOption, RealmOption, UrlOption
from astraea.cli.realm_management_triggers import policies, triggers
from astraea.core.interface import Interface
from astraea.core.interface_parser import InterfaceValidationError, parse_interface
from astraea.interfaces import ASTARTE_STANDARD

app = typer.Typer(no_args_is_help=True)
interfaces = typer.Typer(no_args_is_help=True, help="List, install, update and sync interfaces.")
app.add_typer(interfaces, name="interfaces")
app.add_typer(triggers, name="triggers")
app.add_typer(
    policies, name="policies", help="List, show, install and delete trigger delivery policies."
)


@app.callback()
def connection(
    ctx: typer.Context,
    realm: RealmOption = None,
    url: UrlOption = DEFAULT_URL,
    token: Annotated[
        str | None, typer.Option(envvar="ASTRAEA_REALM_TOKEN", help="A Realm Management JWT.")
    ] = None,
    private_key: RealmKeyOption = None,
) -> None:
    ctx.obj = _Realm(RealmAccess(url, realm, token, private_key, "ASTRAEA_REALM_TOKEN"))


@dataclass(frozen=True, slots=True)
class _Realm:
    access: RealmAccess

    @property
    def name(self) -> str:
        return self.access.realm

    @property
    def client(self) -> ApiClient:
        return self.access.client("realm-management")

    def call(self, method: str, path: str, data: Any = None) -> Any:
        return self.client.call(method, f"/realmmanagement/v1/{self.name}{path}", data=data)


def _load(path: Path) -> tuple[dict[str, Any], Interface]:
    """Reads and validates an interface file locally, so mistakes show before any upload."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}")
    try:
        return document, parse_interface(document)
    except InterfaceValidationError as exc:
        fail(f"{path} is not a valid interface: {json.dumps(exc.errors)}")


@interfaces.command("list")
def list_interfaces(ctx: typer.Context) -> None:
    """List installed interface names."""
    for name in ctx.obj.call("GET", "/interfaces"):
        print_text(name)


@interfaces.command("versions")
def versions(ctx: typer.Context, name: str) -> None:
    """List the installed major versions of an interface."""
    for major in ctx.obj.call("GET", f"/interfaces/{name}"):
        print_text(str(major))


@interfaces.command("show")
def show(ctx: typer.Context, name: str, major: int) -> None:
    """Print an installed interface."""
    print_json(ctx.obj.call("GET", f"/interfaces/{name}/{major}"))


@interfaces.command("install")
def install(ctx: typer.Context, file: Path) -> None:
    """Install a new interface (or a new major version) from a JSON file."""
    document, interface = _load(file)
    ctx.obj.call("POST", "/interfaces", document)
    print_text(f"Installed {interface.name} v{interface.major}.{interface.minor}.")


@interfaces.command("update")
def update(ctx: typer.Context, file: Path) -> None:
    """Apply a minor update of an installed interface from a JSON file."""
    document, interface = _load(file)
    ctx.obj.call("PUT", f"/interfaces/{interface.name}/{interface.major}", document)
    print_text(f"Updated {interface.name} v{interface.major} to minor {interface.minor}.")


@interfaces.command("delete")
def delete(ctx: typer.Context, name: str, major: int) -> None:
    """Delete an interface (major version 0 only, and only while no device uses it)."""
    ctx.obj.call("DELETE", f"/interfaces/{name}/{major}")
    print_text(f"Deleted {name} v{major}.")


class _Action(enum.StrEnum):
    INSTALL = "install"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"


@dataclass(slots=True)
class _Step:
    file: Path
    document: dict[str, Any]
    interface: Interface
    installed_minor: int | None
    action: _Action


def _plan(realm: _Realm, folder: Path) -> list[_Step]:
    files = sorted(folder.glob("*.json"))
    if not files:
        fail(f"no .json files in {folder}")
    steps = []
    for file in files:
        document, interface = _load(file)
        response = realm.client.request(
            "GET", f"/realmmanagement/v1/{realm.name}/interfaces/{interface.name}/{interface.major}"
        )
        if response.status_code == 404:
            steps.append(_Step(file, document, interface, None, _Action.INSTALL))
            continue
        if response.is_error:
            fail(f"cannot read {interface.name} v{interface.major}: {response.status_code}")
        installed = response.json()["data"]
        minor = installed["version_minor"]
        if installed == interface.to_json():
            action = _Action.UNCHANGED
        elif interface.minor > minor:
            action = _Action.UPDATE
        else:
            action = _Action.CONFLICT
        steps.append(_Step(file, document, interface, minor, action))
    return steps


@interfaces.command("sync")
def sync(
    ctx: typer.Context,
    folder: Annotated[
        Path | None,
        typer.Argument(exists=True, file_okay=False, help="A folder of interface JSON files."),
    ] = None,
    standard: Annotated[
        bool,
        typer.Option(
            "--standard", help="Sync Astarte's standard interfaces, which ship with Astraea."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
) -> None:
    """Install missing interfaces and apply minor updates from a folder of JSON files (or the
    standard interfaces), showing the plan first and reporting what was done."""
    realm: _Realm = ctx.obj
    if standard == (folder is not None):
        fail("give either a FOLDER or --standard")
    steps = _plan(realm, ASTARTE_STANDARD if folder is None else folder)
    print_table(
        ["file", "interface", "major", "installed minor", "new minor", "action"],
        [
            (
                s.file.name,
                s.interface.name,
                s.interface.major,
                s.installed_minor,
                s.interface.minor,
                s.action.value,
            )
            for s in steps
        ],
        title=f"Plan for realm {realm.name}",
    )
    conflicts = [s for s in steps if s.action is _Action.CONFLICT]
    if conflicts:
        fail(
            f"{len(conflicts)} interface(s) differ from the installed version without a higher "
            "minor version; bump version_minor or use a new major"
        )
    todo = [s for s in steps if s.action in (_Action.INSTALL, _Action.UPDATE)]
    if not todo:
        print_text("Everything is up to date.")
        return
    if not yes and not typer.confirm(f"Apply {len(todo)} change(s)?"):
        fail("aborted, nothing changed")
    for step in track(todo, description="Syncing interfaces"):
        name, major, minor = step.interface.name, step.interface.major, step.interface.minor
        if step.action is _Action.INSTALL:
            realm.call("POST", "/interfaces", step.document)
            print_text(f"Installed {name} v{major}.{minor}.")
        else:
            realm.call("PUT", f"/interfaces/{name}/{major}", step.document)
            print_text(f"Updated {name} v{major} from minor {step.installed_minor} to {minor}.")
    print_text(f"Synced {len(todo)} interface(s).")
