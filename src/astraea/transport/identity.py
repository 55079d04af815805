"""Device identity as carried by the client certificate (sans-IO).

Astarte ignores the MQTT client id and password: the certificate's common name
`<realm>/<device_id>` is the only identity, and sessions are keyed by it.
"""

from __future__ import annotations

from dataclasses import dataclass

_FORBIDDEN_CHARACTERS = ("+", "#", "\x00")


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    realm: str
    device_id: str

    @classmethod
    def from_common_name(cls, common_name: str) -> DeviceIdentity | None:
        """The identity a certificate CN names, or None if it names no device."""
        parts = common_name.split("/")
        if len(parts) != 2 or not all(parts):
            return None
        if any(character in common_name for character in _FORBIDDEN_CHARACTERS):
            return None
        return cls(parts[0], parts[1])

    @property
    def topic_root(self) -> str:
        """The topic every message of this device lives at or below."""
        return f"{self.realm}/{self.device_id}"

    def __str__(self) -> str:
        return self.topic_root
