"""HTTP access to a running platform for the CLI groups, with one-line errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from astraea.cli.output import fail
from astraea.jwt_tokens import mint_token

DEFAULT_URL = "http://127.0.0.1:4000"
# Tokens the CLI mints for itself live just long enough for one command.
_TOKEN_SECONDS = 300


def default_housekeeping_key() -> Path:
    """Where `astraea up` generated the housekeeping key when started from this folder."""
    data_dir = Path(os.environ.get("ASTRAEA_DATA_DIR", "astraea-data"))
    return data_dir / "keys" / "housekeeping_private.pem"


@dataclass(slots=True)
class ApiClient:
    base_url: str
    token: str | None

    @classmethod
    def for_service(
        cls, url: str, service: str, token: str | None, private_key: Path | None
    ) -> ApiClient:
        """Uses `token` as given, or mints a short-lived one from `private_key`."""
        if token is None and private_key is not None:
            try:
                pem = private_key.read_text()
            except OSError as exc:
                fail(f"cannot read private key {private_key}: {exc.strerror}")
            try:
                token = mint_token(pem, [service], expiry_seconds=_TOKEN_SECONDS)
            except ValueError as exc:
                fail(f"cannot sign a token with {private_key}: {exc}")
        return cls(url.rstrip("/"), token)

    def request(
        self, method: str, path: str, *, data: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = None if data is None else {"data": data}
        try:
            response = httpx.request(
                method, self.base_url + path, json=body, params=params, headers=headers, timeout=30
            )
        except httpx.TransportError as exc:
            fail(f"cannot reach Astraea at {self.base_url}: {exc}")
        return response

    def checked(
        self, method: str, path: str, *, data: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """A successful response; fails with the server's error otherwise."""
        response = self.request(method, path, data=data, params=params)
        if response.is_error:
            fail(f"{method} {path}: {response.status_code} {describe_error(response)}")
        return response

    def call(
        self, method: str, path: str, *, data: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """The `data` of a successful response (None for an empty one); fails on errors."""
        response = self.checked(method, path, data=data, params=params)
        if not response.content:
            return None
        return response.json().get("data")


def describe_error(response: httpx.Response) -> str:
    """The server's error detail, or its per-field messages, as one line."""
    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
    if isinstance(errors, dict) and set(errors) == {"detail"}:
        return str(errors["detail"])
    return _flatten(errors)


def _flatten(errors: Any, prefix: str = "") -> str:
    if isinstance(errors, dict):
        parts = [_flatten(value, f"{prefix}{key}.") for key, value in errors.items()]
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return f"{prefix.rstrip('.')}: {', '.join(errors)}"
    elif isinstance(errors, list):
        parts = [_flatten(value, f"{prefix}{i}.") for i, value in enumerate(errors)]
    else:
        return f"{prefix.rstrip('.')}: {errors}"
    return "; ".join(p for p in parts if p)
