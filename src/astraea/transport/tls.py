"""TLS for the device listener: mutual authentication and identity from the certificate."""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

from astraea.transport.identity import DeviceIdentity
from astraea.transport.settings import TransportSettings

_Subject = tuple[tuple[tuple[str, str], ...], ...]


def server_ssl_context(settings: TransportSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert_file, settings.key_file)
    context.load_verify_locations(settings.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_identity(transport: asyncio.BaseTransport) -> tuple[DeviceIdentity | None, bytes]:
    """The device a verified peer certificate names (None if its CN names none) and its DER.

    A certificate with several common names names nobody: we would have to guess.
    """
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None, b""
    certificate = ssl_object.getpeercert() or {}
    der = ssl_object.getpeercert(binary_form=True) or b""
    # The stdlib documents "subject" as a tuple of RDNs, each a tuple of (key, value) pairs.
    subject = cast(_Subject, certificate.get("subject", ()))
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]
    identity = DeviceIdentity.from_common_name(names[0]) if len(names) == 1 else None
    return identity, der
