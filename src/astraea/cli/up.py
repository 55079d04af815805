"""`astraea up` (every role in one process, by default on SQLite and the in-process bus)
and `astraea serve --role …` (some roles, usually on PostgreSQL and RabbitMQ).

Both take the same flags, so one command line fits every process of a deployment; a flag that
a role does not use is ignored.
"""

from __future__ import annotations

import enum
import inspect
import logging
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console

from astraea import __version__
from astraea.cli.api_client import DEFAULT_URL
from astraea.config import ALL_ROLES, Role, Settings

if TYPE_CHECKING:
    from astraea.platform import Platform

_console = Console(stderr=True)
# Where `astraea housekeeping` looks for its key when given none: `astraea up`'s default.
_DEFAULT_KEY = Path("astraea-data") / "keys" / "housekeeping_private.pem"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _announce(started_at: float, first_start: bool) -> Callable[[Platform], None]:
    """The start-up summary; the next steps only on the first start of a data folder."""

    def announce(platform: Platform) -> None:
        settings = platform.settings
        keys = platform.keys
        assert keys is not None
        base = f"http://{settings.host}:{platform.http_port}"
        elapsed = time.monotonic() - started_at
        roles = ", ".join(role.value for role in Role if role in settings.roles)
        _console.print(f"[bold green]Astraea {__version__} is up[/] in {elapsed:.2f} s ({roles})")
        if Role.API in settings.roles:
            _console.print(f"  HTTP APIs      {base}  (docs: {base}/docs)")
        else:
            _console.print(f"  health         {base}/health  (metrics: {base}/metrics)")
        if platform.mqtt is not None:
            _console.print(
                f"  MQTT (TLS)     {settings.host}:{platform.mqtt.port}"
                f"  (node {platform.node_name}; devices are told: {platform.broker_url})"
            )
        _console.print(f"  storage        {_redacted(settings.storage_url())}")
        _console.print(f"  bus            {_redacted(settings.bus_url or 'in this process')}")
        _console.print(f"  data folder    {settings.data_dir.resolve()}")
        _console.print(f"  housekeeping public key   {keys.housekeeping_public_key}")
        if keys.housekeeping_private_key is not None:
            _console.print(f"  housekeeping private key  {keys.housekeeping_private_key}")
        _console.print(f"  broker certificate        {keys.mqtt_tls_cert}")
        if settings.disable_auth:
            _console.print("[bold red]  AUTHENTICATION IS DISABLED: anyone can call every API[/]")
        if first_start and Role.API in settings.roles:
            _console.print("Next: create a realm and install the standard interfaces, e.g.")
            for line in next_steps(base, keys.housekeeping_private_key):
                _console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        _console.print("Press Ctrl+C to stop.")

    return announce


def next_steps(base_url: str, housekeeping_private_key: Path | None) -> list[str]:
    """Commands that create a first realm on this platform as it was started: flags that
    differ from the CLI's defaults (URL, key location) are spelled out."""
    url = [] if base_url == DEFAULT_URL else ["--url", base_url]
    if housekeeping_private_key is None:
        credentials = ["--token", "<a Housekeeping JWT>"]
    elif housekeeping_private_key.resolve() == _DEFAULT_KEY.resolve():
        credentials = []
    else:
        credentials = ["--private-key", str(housekeeping_private_key)]
    housekeeping = ["astraea", "housekeeping", *url, *credentials]
    realm = ["astraea", "realm-management", *url, "--realm", "myrealm"]
    return [
        shlex.join(["astraea", "utils", "gen-keypair", "--algorithm", "rsa", "--out", "myrealm"]),
        shlex.join(
            [*housekeeping, "realms", "create", "myrealm", "--public-key", "myrealm_public.pem"]
        ),
        shlex.join([*realm, "--private-key", "myrealm.pem", "interfaces", "sync", "--standard"]),
    ]


def up(
    data_dir: Annotated[
        Path,
        typer.Option(envvar="ASTRAEA_DATA_DIR", help="Where data, keys and certificates live."),
    ] = Path("astraea-data"),
    host: Annotated[str, typer.Option(envvar="ASTRAEA_HOST", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    http_port: Annotated[
        int, typer.Option(envvar="ASTRAEA_HTTP_PORT", help="All HTTP APIs, docs, health, metrics.")
    ] = 4000,
    mqtt_port: Annotated[
        int, typer.Option(envvar="ASTRAEA_MQTT_PORT", help="MQTT over TLS for devices.")
    ] = 8883,
    broker_url: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_BROKER_URL",
            help="Broker URL given to devices.",
            show_default="mqtts://localhost:<mqtt-port>",
        ),
    ] = None,
    housekeeping_public_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ASTRAEA_HOUSEKEEPING_PUBLIC_KEY",
            exists=True,
            dir_okay=False,
            help="PEM public key for Housekeeping tokens.",
            show_default="generated in the data folder",
        ),
    ] = None,
    mqtt_tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="ASTRAEA_MQTT_TLS_CERT",
            exists=True,
            dir_okay=False,
            help="The broker's TLS certificate (PEM), with --mqtt-tls-key.",
            show_default="generated in the data folder, self-signed for localhost",
        ),
    ] = None,
    mqtt_tls_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ASTRAEA_MQTT_TLS_KEY",
            exists=True,
            dir_okay=False,
            help="The private key of --mqtt-tls-cert (PEM).",
            show_default="generated with the certificate",
        ),
    ] = None,
    disable_auth: Annotated[
        bool,
        typer.Option(
            "--disable-auth", envvar="ASTRAEA_DISABLE_AUTH", help="Development only: no API auth."
        ),
    ] = False,
    enable_realm_deletion: Annotated[
        bool, typer.Option("--enable-realm-deletion", envvar="ASTRAEA_ENABLE_REALM_DELETION")
    ] = False,
    appengine_max_results: Annotated[
        int,
        typer.Option(
            envvar="ASTRAEA_APPENGINE_MAX_RESULTS",
            min=1,
            help="Most samples one AppEngine GET returns; larger limits are capped to it.",
        ),
    ] = 10_000,
    amqp_url: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_AMQP_URL",
            help="RabbitMQ for AMQP trigger actions, e.g. amqp://guest:guest@localhost:5672/.",
            show_default="none: AMQP actions are dropped",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_DATABASE_URL",
            help="Storage, e.g. postgresql://user:pass@host/db.",
            show_default="SQLite in the data folder",
        ),
    ] = None,
    bus_url: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_BUS_URL",
            help="The bus between roles, e.g. amqp://guest:guest@host:5672/.",
            show_default="in this process",
        ),
    ] = None,
    node_name: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_NODE_NAME",
            help="Names this transport node.",
            show_default="host name and MQTT port",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            envvar="ASTRAEA_LOG_LEVEL",
            help="info logs every HTTP request (astraea.access) and device connection "
            "(astraea.connections); warning keeps only problems.",
        ),
    ] = LogLevel.INFO,
) -> None:
    """Run every role in one process, by default on SQLite and an in-process bus."""
    _run(ALL_ROLES, **locals())


def serve(
    role: Annotated[
        list[str],
        typer.Option(
            "--role",
            envvar="ASTRAEA_ROLE",
            help="transport, ingest, triggers or api; several as a comma-separated list or "
            "repeated --role.",
        ),
    ],
    **options: Any,
) -> None:
    """Run some roles in this process, sharing storage (--database-url) and bus (--bus-url)."""
    _run(_parse_roles(role), **options)


def _parse_roles(values: list[str]) -> frozenset[Role]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    try:
        return frozenset(Role(name) for name in names)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise typer.BadParameter(f"unknown role in {values!r}; roles are {known}") from None


def _redacted(url: str) -> str:
    """The URL without its password, fit for a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _run(
    roles: frozenset[Role],
    *,
    data_dir: Path,
    host: str,
    http_port: int,
    mqtt_port: int,
    broker_url: str | None,
    housekeeping_public_key: Path | None,
    mqtt_tls_cert: Path | None,
    mqtt_tls_key: Path | None,
    disable_auth: bool,
    enable_realm_deletion: bool,
    appengine_max_results: int,
    amqp_url: str | None,
    database_url: str | None,
    bus_url: str | None,
    node_name: str | None,
    log_level: LogLevel,
) -> None:
    if (mqtt_tls_cert is None) != (mqtt_tls_key is None):
        raise typer.BadParameter("--mqtt-tls-cert and --mqtt-tls-key go together")
    started_at = time.monotonic()
    first_start = not data_dir.exists() or not any(data_dir.iterdir())
    logging.basicConfig(
        level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if disable_auth:
        logging.getLogger("astraea").warning(
            "authentication is DISABLED (--disable-auth): every API is open to anyone"
        )
    settings = Settings(
        data_dir=data_dir,
        host=host,
        http_port=http_port,
        mqtt_port=mqtt_port,
        broker_url=broker_url,
        housekeeping_public_key=housekeeping_public_key,
        mqtt_tls_cert=mqtt_tls_cert,
        mqtt_tls_key=mqtt_tls_key,
        disable_auth=disable_auth,
        enable_realm_deletion=enable_realm_deletion,
        amqp_url=amqp_url,
        appengine_max_results=appengine_max_results,
        database_url=database_url,
        bus_url=bus_url,
        node_name=node_name,
        roles=roles,
    )
    # Imported here: the platform pulls in every component, which other commands never need
    # and which would slow every `astraea` invocation down by half a second.
    from astraea.bus.base import BusError
    from astraea.platform import ConfigurationError, Platform, run_event_loop, run_until_signalled
    from astraea.storage.base import StorageError

    try:
        run_event_loop(run_until_signalled(Platform(settings), _announce(started_at, first_start)))
    except (OSError, ConfigurationError, StorageError, BusError) as exc:
        _console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    _console.print("Astraea stopped.")


# `serve` takes every flag of `up`, plus --role.
serve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.signature(serve, eval_str=True).parameters["role"],
        *inspect.signature(up, eval_str=True).parameters.values(),
    ]
)
