"""How components talk without sharing objects: the interface (`base`), the messages, and
one module per backend."""

from __future__ import annotations

from urllib.parse import urlsplit

from astraea.bus.base import Bus
from astraea.bus.inproc import InprocBus


def open_bus(url: str | None, name: str) -> Bus:
    """The in-process bus for None, else the backend the URL's scheme names (`amqp://`).

    `name` identifies this process to the broker. Error messages name only the scheme: a URL
    may carry a password.
    """
    if url is None:
        return InprocBus()
    scheme = urlsplit(url).scheme
    if scheme in ("amqp", "amqps"):
        from astraea.bus.rabbitmq import RabbitMqBus

        return RabbitMqBus(url, name)
    raise ValueError(f"unsupported bus URL scheme {scheme or '(none)'!r}: expected amqp://...")
