"""`astraea utils`: offline helpers for keypairs, API tokens and device ids.

Nothing here talks to a server, so these commands work before any realm exists and are
safe to use in scripts: results go to stdout alone, errors are one line with exit code 1.
"""

from __future__ import annotations

import enum
import re
import uuid
from pathlib import Path
from typing import Annotated

import typer

from astraea.cli.output import fail, print_text
from astraea.core.device_id import (
    InvalidDeviceId,
    device_id_from_uuid,
    device_id_to_uuid,
    namespaced_device_id,
    random_device_id,
)
from astraea.jwt_tokens import API_CLAIMS, TokenError, mint_token
from astraea.tls_material import generate_keypair, write_file

app = typer.Typer(
    help="Offline helpers: keypairs, API tokens and device ids.", no_args_is_help=True
)
device_id_app = typer.Typer(help="Generate and convert device ids.", no_args_is_help=True)
app.add_typer(device_id_app, name="device-id")


class KeyAlgorithm(enum.StrEnum):
    RSA = "rsa"
    EC = "ec"


class Service(enum.StrEnum):
    HOUSEKEEPING = "housekeeping"
    REALM_MANAGEMENT = "realm-management"
    PAIRING = "pairing"
    APPENGINE = "appengine"
    CHANNELS = "channels"
    ALL = "all"
    ALL_REALM_APIS = "all-realm-apis"


# Expansions of the umbrella names; `all-realm-apis` is the name astartectl users know.
_SERVICE_GROUPS: dict[Service, tuple[str, ...]] = {
    Service.ALL: tuple(API_CLAIMS),
    Service.ALL_REALM_APIS: tuple(name for name in API_CLAIMS if name != "housekeeping"),
}


@app.command("gen-keypair")
def gen_keypair(
    algorithm: Annotated[
        KeyAlgorithm,
        typer.Option("--algorithm", "-a", help="rsa (2048 bits, RS256) or ec (P-256, ES256)."),
    ] = KeyAlgorithm.EC,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            metavar="PREFIX",
            help="Write PREFIX.pem (mode 0600) and PREFIX_public.pem instead of printing.",
            show_default="print both to stdout",
        ),
    ] = None,
) -> None:
    """Generate a keypair for signing realm or housekeeping tokens."""
    private_pem, public_pem = generate_keypair(algorithm.value)
    if out is None:
        print_text(private_pem.rstrip("\n"))
        print_text(public_pem.rstrip("\n"))
        return
    private_path, public_path = Path(f"{out}.pem"), Path(f"{out}_public.pem")
    for path in (private_path, public_path):
        if path.exists():
            fail(f"{path} already exists; refusing to overwrite a key")
    try:
        write_file(private_path, private_pem.encode(), private=True, overwrite=False)
        write_file(public_path, public_pem.encode(), private=False, overwrite=False)
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror}")
    print_text(f"Private key written to {private_path}")
    print_text(f"Public key written to {public_path}")


@app.command("gen-jwt")
def gen_jwt(
    services: Annotated[
        list[Service],
        typer.Argument(
            metavar="SERVICE",
            help="APIs to grant; `all` is every API, `all-realm-apis` all but housekeeping.",
            show_default=False,
        ),
    ],
    private_key: Annotated[
        Path, typer.Option("--private-key", "-k", help="PEM private key (RSA or EC) to sign with.")
    ],
    expiry: Annotated[
        int, typer.Option("--expiry", "-e", min=0, help="Lifetime in seconds; 0 never expires.")
    ] = 300,
    claims: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            "-c",
            metavar="'VERB::regex'",
            help="Authorization entry for every selected API (repeatable).",
            show_default="full access",
        ),
    ] = None,
) -> None:
    """Print a signed token for Astarte-compatible APIs."""
    for claim in claims or ():
        _check_claim(claim)
    try:
        pem = private_key.read_text()
    except OSError as exc:
        fail(f"cannot read private key {private_key}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{private_key}: not a PEM-encoded private key")
    names = list(dict.fromkeys(n for s in services for n in _SERVICE_GROUPS.get(s, (s.value,))))
    try:
        token = mint_token(pem, names, expiry_seconds=expiry, claims=claims)
    except TokenError as exc:
        fail(f"{private_key}: {exc}")
    print_text(token)


@device_id_app.command("generate-random")
def generate_random() -> None:
    """Print a new random device id."""
    print_text(random_device_id())


@device_id_app.command("namespaced")
def namespaced(
    namespace: Annotated[str, typer.Argument(metavar="NAMESPACE_UUID", show_default=False)],
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False)],
) -> None:
    """Print the deterministic id of DATA in a namespace (same as the device SDKs)."""
    print_text(namespaced_device_id(_parse_uuid(namespace), data))


@device_id_app.command("to-uuid")
def to_uuid(device_id: Annotated[str, typer.Argument(metavar="ID", show_default=False)]) -> None:
    """Print the UUID under which a device id is stored."""
    try:
        print_text(str(device_id_to_uuid(device_id)))
    except InvalidDeviceId as exc:
        fail(str(exc))


@device_id_app.command("from-uuid")
def from_uuid(value: Annotated[str, typer.Argument(metavar="UUID", show_default=False)]) -> None:
    """Print the device id whose storage UUID is UUID."""
    print_text(device_id_from_uuid(_parse_uuid(value)))


def _check_claim(claim: str) -> None:
    """Reject entries Astarte would silently skip, which would yield a useless token."""
    parts = claim.split(":", 2)
    if len(parts) != 3:
        fail(f"claim {claim!r} must look like 'VERB::regex'")
    for pattern in (parts[0], parts[2]):
        try:
            re.compile(pattern)
        except re.error as exc:
            fail(f"claim {claim!r} has an invalid regex {pattern!r}: {exc}")


def _parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{value!r} is not a valid UUID")
