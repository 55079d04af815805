"""How the realm-scoped CLI groups reach a realm's APIs.

Clients are made on demand rather than in the group callback: some commands need no JWT at
all (a device authenticates with its secret) and some need a second API's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from astraea.cli.api_client import ApiClient
from astraea.cli.output import fail

# The options every realm-scoped group takes besides its own token option.
RealmOption = Annotated[str | None, typer.Option(envvar="ASTRAEA_REALM", help="Realm name.")]
UrlOption = Annotated[str, typer.Option(envvar="ASTRAEA_URL", help="Platform base URL.")]
RealmKeyOption = Annotated[
    Path | None,
    typer.Option(envvar="ASTRAEA_REALM_KEY", help="The realm's private key to sign tokens."),
]


@dataclass(frozen=True, slots=True)
class RealmAccess:
    """Checked when a command runs, not in the group callback, so `--help` of any command
    works without a realm or credentials."""

    url: str
    given_realm: str | None
    token: str | None
    private_key: Path | None
    token_envvar: str  # named in the error that asks for credentials

    @property
    def realm(self) -> str:
        if not self.given_realm:
            fail("give --realm (or ASTRAEA_REALM)")
        return self.given_realm

    def client(self, service: str) -> ApiClient:
        """A client for `service`: the given token as is, or one minted from the realm key."""
        if self.token is None and self.private_key is None:
            fail(f"give --token or --private-key (or {self.token_envvar} / ASTRAEA_REALM_KEY)")
        return ApiClient.for_service(self.url, service, self.token, self.private_key)
