"""Which topics a device may touch (sans-IO).

A device owns `<realm>/<device_id>` and everything below it, nothing else; the same rule
covers the topics it publishes to and the filters it subscribes with. Filters may use
wildcards only below that root, so no subscription can reach another device.
"""

from __future__ import annotations

from astraea.transport.identity import DeviceIdentity


class TopicAcl:
    """Topic rights of one device, precomputed because every PUBLISH is checked."""

    __slots__ = ("_prefix", "_root")

    def __init__(self, identity: DeviceIdentity) -> None:
        self._root = identity.topic_root
        self._prefix = self._root + "/"

    def allows(self, topic_or_filter: str) -> bool:
        """Whether a valid topic name or topic filter stays at or below the device root.

        The root holds no wildcards, so a filter passing this literal test can only
        widen below the root.
        """
        return topic_or_filter.startswith(self._prefix) or topic_or_filter == self._root
