"""Device errors: Astarte's names, what each one costs the device, and its metadata.

Names and policies follow ingestion.md §3a, so trigger consumers written for Astarte's
`device_error` events keep working.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass


class ErrorName(enum.StrEnum):
    INVALID_PATH = "invalid_path"
    INTERFACE_LOADING_FAILED = "interface_loading_failed"
    WRITE_ON_SERVER_OWNED_INTERFACE = "write_on_server_owned_interface"
    MAPPING_NOT_FOUND = "mapping_not_found"
    AMBIGUOUS_PATH = "ambiguous_path"
    KEY_AGREEMENT_ERROR = "key_agreement_error"
    UNDECODABLE_BSON_PAYLOAD = "undecodable_bson_payload"
    UNEXPECTED_VALUE_TYPE = "unexpected_value_type"
    UNEXPECTED_OBJECT_KEY = "unexpected_object_key"
    VALUE_SIZE_EXCEEDED = "value_size_exceeded"
    MISSING_REQUIRED_MAPPING = "missing_required_mapping"
    UNSET_ON_DATASTREAM = "unset_on_datastream"
    UNSET_NOT_ALLOWED = "unset_not_allowed"
    INVALID_INTROSPECTION = "invalid_introspection"
    UNEXPECTED_CONTROL_MESSAGE = "unexpected_control_message"
    PURGE_PROPERTIES_ERROR = "purge_properties_error"
    MALFORMED_CAPABILITIES_MESSAGE = "malformed_capabilities_message"

    @property
    def clean_session(self) -> bool:
        """Whether the device is disconnected with its session discarded (and must then
        resynchronise through emptyCache)."""
        return self is not ErrorName.UNSET_ON_DATASTREAM

    @property
    def fires_trigger(self) -> bool:
        return self is not ErrorName.PURGE_PROPERTIES_ERROR

    @property
    def counts_traffic(self) -> bool:
        """Whether the rejected message still counts in the device's traffic statistics."""
        return self not in _NOT_COUNTED


_NOT_COUNTED = frozenset(
    {
        ErrorName.UNSET_ON_DATASTREAM,
        ErrorName.UNSET_NOT_ALLOWED,
        ErrorName.PURGE_PROPERTIES_ERROR,
        ErrorName.MALFORMED_CAPABILITIES_MESSAGE,
    }
)


@dataclass(frozen=True, slots=True)
class DeviceError:
    """Why a message was rejected; `clean_session` tells the transport to force-disconnect
    the device and discard its session."""

    name: ErrorName
    metadata: dict[str, str]

    @property
    def clean_session(self) -> bool:
        return self.name.clean_session


def error_metadata(
    *, interface: str | None = None, path: str | None = None, payload: bytes | None = None
) -> dict[str, str]:
    """Astarte's `device_error` metadata: quoted interface and path, base64 payload."""
    metadata = {}
    if interface is not None:
        metadata["interface"] = elixir_inspect(interface)
    if path is not None:
        metadata["path"] = elixir_inspect(path)
    if payload is not None:
        metadata["base64_payload"] = base64.b64encode(payload).decode("ascii")
    return metadata


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\b": "\\b",
    "\f": "\\f",
    "\x1b": "\\e",
    "\x07": "\\a",
}


def elixir_inspect(text: str) -> str:
    """How Elixir's `inspect` renders a string, the form Astarte puts in error metadata:
    quoted and escaped when printable, else as the list of its UTF-8 bytes."""
    if not all(_printable(char) for char in text):
        return "<<" + ", ".join(str(byte) for byte in text.encode("utf-8")) + ">>"
    escaped = "".join(_ESCAPES.get(char, char) for char in text)
    return '"' + escaped.replace("#{", "\\#{") + '"'


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
        or char in _ESCAPES
    )
