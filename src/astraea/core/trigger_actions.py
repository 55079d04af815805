"""Trigger actions: validation of untrusted action JSON into immutable models, and rendering.

An action says where a trigger's events go: an HTTP request (default JSON body or a Mustache
template) or an AMQP 0-9-1 publish. Errors are collected per field the way Astarte's Ecto
changesets render them, so Realm Management can return `ActionValidationError.errors` as the
`errors` member of a 422 body. `FieldReader` is shared with the policy parser, which follows
the same changeset conventions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HTTP_METHODS = ("delete", "get", "head", "options", "patch", "post", "put")
HTTP_URL_MIN_LENGTH = len("http://a")
HTTP_URL_MAX_LENGTH = 8192
HTTP_HEADERS_MAX_SIZE = 8192  # exclusive, counting "name: value"
AMQP_HEADERS_MAX_SIZE = 65_536  # exclusive, counting name + value
TEMPLATE_MAX_LENGTH = 1024 * 1024
AMQP_NAME_MAX_BYTES = 255
AMQP_PRIORITY_MAX = 9
MUSTACHE = "mustache"

# Hop-by-hop and proxy headers: the HTTP client owns them, a user value would break the request.
FORBIDDEN_HTTP_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "date",
        "host",
        "te",
        "upgrade",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "sec-websocket-accept",
        "proxy-authorization",
        "proxy-authenticate",
    }
)

_EXCHANGE_SUFFIX = r"[a-zA-Z0-9_.:]+"

Headers = tuple[tuple[str, str], ...]


class ActionValidationError(ValueError):
    """The document is not a valid action; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(f"invalid trigger action: {errors}")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class HttpAction:
    url: str
    method: str
    static_headers: Headers = ()
    ignore_ssl_errors: bool = False
    template: str | None = None
    # Stored as given: Astarte keeps any value and renders the template only for "mustache".
    template_type: str | None = None

    @property
    def uses_mustache(self) -> bool:
        return self.template_type == MUSTACHE and self.template is not None


@dataclass(frozen=True, slots=True)
class AmqpAction:
    exchange: str
    routing_key: str
    message_expiration_ms: int
    message_persistent: bool
    message_priority: int | None = None
    static_headers: Headers = ()


Action = HttpAction | AmqpAction


class FieldReader:
    """Reads typed fields of one JSON object, recording Ecto-style messages per field.

    As with Ecto's cast, null and blank strings count as absent, and a field whose type is
    wrong gets `is invalid` and no further checks.
    """

    def __init__(self, source: Mapping[str, Any]) -> None:
        self.source = source
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        messages = self.errors.setdefault(field, [])
        if message not in messages:
            messages.append(message)

    def present(self, field: str) -> bool:
        value = self.source.get(field)
        return value is not None and not (isinstance(value, str) and not value.strip())

    def _value(self, field: str, required: bool) -> Any:
        if not self.present(field):
            if required:
                self.add(field, "can't be blank")
            return None
        return self.source[field]

    def text(self, field: str, *, required: bool = False) -> str | None:
        value = self._value(field, required)
        if value is None or isinstance(value, str):
            return value
        self.add(field, "is invalid")
        return None

    def integer(self, field: str, *, required: bool = False) -> int | None:
        value = self._value(field, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(field, "is invalid")
            return None
        return value

    def integer_in(self, field: str, low: int, high: int, *, required: bool = False) -> int | None:
        """An integer within low..high inclusive (Ecto's `validate_inclusion` on a range)."""
        value = self.integer(field, required=required)
        if value is not None and not low <= value <= high:
            self.add(field, "is invalid")
        return value

    def boolean(self, field: str, *, required: bool = False) -> bool | None:
        value = self._value(field, required)
        if value is None or isinstance(value, bool):
            return value
        self.add(field, "is invalid")
        return None

    def string_map(self, field: str) -> Headers | None:
        value = self._value(field, False)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        ):
            self.add(field, "is invalid")
            return None
        return tuple(value.items())


def parse_action(obj: object, *, realm: str) -> Action:
    """Validates an action document of a trigger of `realm` (AMQP exchanges embed the realm).

    The kind is chosen by key presence as Astarte does: `amqp_exchange` first, then
    `http_url` or the legacy `http_post_url`.
    """
    if isinstance(obj, dict):
        if "amqp_exchange" in obj:
            return _amqp_action(obj, realm)
        if "http_url" in obj or "http_post_url" in obj:
            return _http_action(obj)
    raise ActionValidationError({"action": ["is invalid"]})


def action_to_json(action: Action) -> dict[str, object]:
    """The normalized form Realm Management stores and renders."""
    if isinstance(action, HttpAction):
        doc: dict[str, object] = {
            "http_url": action.url,
            "http_method": action.method,
            "ignore_ssl_errors": action.ignore_ssl_errors,
        }
        if action.static_headers:
            doc["http_static_headers"] = dict(action.static_headers)
        if action.template is not None:
            doc["template"] = action.template
        if action.template_type is not None:
            doc["template_type"] = action.template_type
        return doc
    doc = {
        "amqp_exchange": action.exchange,
        "amqp_routing_key": action.routing_key,
        "amqp_message_expiration_ms": action.message_expiration_ms,
        "amqp_message_persistent": action.message_persistent,
    }
    if action.static_headers:
        doc["amqp_static_headers"] = dict(action.static_headers)
    if action.message_priority is not None:
        doc["amqp_message_priority"] = action.message_priority
    return doc


def _http_action(doc: dict[str, Any]) -> HttpAction:
    fields = FieldReader(doc)
    if fields.present("http_post_url"):
        # Legacy form: the URL alone, always POSTed; the new keys must not be mixed in.
        for field in ("http_url", "http_method", "http_static_headers"):
            if fields.present(field):
                fields.add(field, "must be blank")
        url = _checked_url(fields, "http_post_url")
        method: str | None = "post"
        headers: Headers | None = None
    else:
        url = _checked_url(fields, "http_url")
        method = fields.text("http_method", required=True)
        if method is not None and method not in HTTP_METHODS:
            fields.add("http_method", "is invalid")
        headers = fields.string_map("http_static_headers")
        if headers is not None:
            _check_http_headers(fields, headers)
    ignore_ssl_errors = fields.boolean("ignore_ssl_errors")
    template = fields.text("template")
    if template is not None and len(template) > TEMPLATE_MAX_LENGTH:
        fields.add("template", f"should be at most {TEMPLATE_MAX_LENGTH} character(s)")
    template_type = fields.text("template_type")
    if fields.errors or url is None or method is None:
        raise ActionValidationError(fields.errors)
    return HttpAction(
        url=url,
        method=method,
        static_headers=headers or (),
        ignore_ssl_errors=bool(ignore_ssl_errors),
        template=template,
        template_type=template_type,
    )


def _checked_url(fields: FieldReader, field: str) -> str | None:
    url = fields.text(field, required=True)
    if url is None:
        return None
    if len(url) < HTTP_URL_MIN_LENGTH:
        fields.add(field, f"should be at least {HTTP_URL_MIN_LENGTH} character(s)")
    if len(url) > HTTP_URL_MAX_LENGTH:
        fields.add(field, f"should be at most {HTTP_URL_MAX_LENGTH} character(s)")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        fields.add(field, "must be a valid http(s) URL")
    return url


def _check_http_headers(fields: FieldReader, headers: Headers) -> None:
    if any(name.strip().lower() in FORBIDDEN_HTTP_HEADERS for name, _ in headers):
        fields.add("http_static_headers", "must contain only allowed http headers")
    size = sum(_utf8_len(name) + len(": ") + _utf8_len(value) for name, value in headers)
    if size >= HTTP_HEADERS_MAX_SIZE:
        fields.add(
            "http_static_headers",
            f"headers total size must be lower than {HTTP_HEADERS_MAX_SIZE}",
        )


def _amqp_action(doc: dict[str, Any], realm: str) -> AmqpAction:
    fields = FieldReader(doc)
    exchange = fields.text("amqp_exchange", required=True)
    if exchange is not None:
        _check_amqp_name(fields, "amqp_exchange", exchange)
        pattern = f"astarte_events_{re.escape(realm)}_{_EXCHANGE_SUFFIX}"
        if not re.fullmatch(pattern, exchange):
            fields.add("amqp_exchange", "has invalid format")
    routing_key = fields.text("amqp_routing_key", required=True)
    if routing_key is not None:
        _check_amqp_name(fields, "amqp_routing_key", routing_key)
        if "{" in routing_key or "}" in routing_key:
            fields.add("amqp_routing_key", "has invalid format")
    expiration = fields.integer("amqp_message_expiration_ms", required=True)
    if expiration is not None and expiration <= 0:
        fields.add("amqp_message_expiration_ms", "must be greater than 0")
    persistent = fields.boolean("amqp_message_persistent", required=True)
    priority = fields.integer_in("amqp_message_priority", 0, AMQP_PRIORITY_MAX)
    headers = fields.string_map("amqp_static_headers")
    if headers is not None:
        size = sum(_utf8_len(name) + _utf8_len(value) for name, value in headers)
        if size >= AMQP_HEADERS_MAX_SIZE:
            fields.add(
                "amqp_static_headers",
                f"headers total size must be lower than {AMQP_HEADERS_MAX_SIZE}",
            )
    if (
        fields.errors
        or exchange is None
        or routing_key is None
        or expiration is None
        or persistent is None
    ):
        raise ActionValidationError(fields.errors)
    return AmqpAction(
        exchange=exchange,
        routing_key=routing_key,
        message_expiration_ms=expiration,
        message_persistent=persistent,
        message_priority=priority,
        static_headers=headers or (),
    )


def _check_amqp_name(fields: FieldReader, field: str, value: str) -> None:
    if _utf8_len(value) > AMQP_NAME_MAX_BYTES:
        fields.add(field, f"should be at most {AMQP_NAME_MAX_BYTES} byte(s)")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
