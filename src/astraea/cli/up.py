"""`astraea up`: every component in one process on the embedded default."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from astraea import __version__
from astraea.config import Settings
from astraea.platform import Platform, run_event_loop, run_until_signalled

_console = Console(stderr=True)


def _announce(started_at: float) -> Callable[[Platform], None]:
    def announce(platform: Platform) -> None:
        settings = platform.settings
        keys = platform.keys
        assert keys is not None
        base = f"http://{settings.host}:{platform.http_port}"
        elapsed = time.monotonic() - started_at
        _console.print(f"[bold green]Astraea {__version__} is up[/] in {elapsed:.2f} s")
        _console.print(f"  HTTP APIs      {base}  (docs: {base}/docs)")
        _console.print(
            f"  MQTT (TLS)     {settings.host}:{platform.mqtt.port if platform.mqtt else '?'}"
            f"  (devices are told: {platform.broker_url})"
        )
        _console.print(f"  data folder    {settings.data_dir.resolve()}")
        _console.print(f"  housekeeping public key   {keys.housekeeping_public_key}")
        if keys.housekeeping_private_key is not None:
            _console.print(f"  housekeeping private key  {keys.housekeeping_private_key}")
        _console.print(f"  broker certificate        {keys.mqtt_tls_cert}")
        if settings.disable_auth:
            _console.print("[bold red]  AUTHENTICATION IS DISABLED: anyone can call every API[/]")
        _console.print("Next: create a realm, e.g.")
        _console.print(
            "  astraea utils gen-keypair --out myrealm && "
            "astraea housekeeping realms create myrealm --public-key myrealm_public.pem"
        )
        _console.print("Press Ctrl+C to stop.")

    return announce


def up(
    data_dir: Annotated[
        Path,
        typer.Option(envvar="ASTRAEA_DATA_DIR", help="Where data, keys and certificates live."),
    ] = Path("astraea-data"),
    host: Annotated[str, typer.Option(envvar="ASTRAEA_HOST", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    http_port: Annotated[int, typer.Option(envvar="ASTRAEA_HTTP_PORT")] = 4000,
    mqtt_port: Annotated[int, typer.Option(envvar="ASTRAEA_MQTT_PORT")] = 8883,
    broker_url: Annotated[
        str | None,
        typer.Option(
            envvar="ASTRAEA_BROKER_URL",
            help="Broker URL given to devices [default: mqtts://localhost:<mqtt-port>].",
        ),
    ] = None,
    housekeeping_public_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ASTRAEA_HOUSEKEEPING_PUBLIC_KEY",
            exists=True,
            dir_okay=False,
            help="PEM public key for Housekeeping tokens [default: generated in the data folder].",
        ),
    ] = None,
    mqtt_tls_cert: Annotated[
        Path | None, typer.Option(envvar="ASTRAEA_MQTT_TLS_CERT", exists=True, dir_okay=False)
    ] = None,
    mqtt_tls_key: Annotated[
        Path | None, typer.Option(envvar="ASTRAEA_MQTT_TLS_KEY", exists=True, dir_okay=False)
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
        ),
    ] = None,
) -> None:
    """Run every component in one process on SQLite and an in-process bus."""
    if (mqtt_tls_cert is None) != (mqtt_tls_key is None):
        raise typer.BadParameter("--mqtt-tls-cert and --mqtt-tls-key go together")
    started_at = time.monotonic()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
    )
    try:
        run_event_loop(run_until_signalled(Platform(settings), _announce(started_at)))
    except OSError as exc:
        _console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    _console.print("Astraea stopped.")
