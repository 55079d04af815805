"""Whether an installed interface may be replaced by a new minor version of itself.

A minor update must keep every device and stored sample valid: it may add mappings and
reword documentation, but must not change what existing paths accept or how they are stored.
"""

from __future__ import annotations

import dataclasses

from astraea.core.endpoints import endpoint_identity
from astraea.core.interface import Interface, Mapping, Retention


class MinorUpdateError(Exception):
    """The update is refused; `detail` is the 409 body's `detail` as Astarte words it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def check_minor_update(old: Interface, new: Interface) -> None:
    """Raises `MinorUpdateError` unless `new` may replace `old`.

    `new` must come from `parse_interface` (so it is valid and free of overlaps), and the
    caller has already checked that name and major match.
    """
    if (old.type, old.ownership, old.aggregation) != (new.type, new.ownership, new.aggregation):
        raise MinorUpdateError("Invalid update")
    if new.minor == old.minor:
        raise MinorUpdateError("Interface minor version was not increased")
    if new.minor < old.minor:
        raise MinorUpdateError("Interface downgrade not allowed")
    updated = {endpoint_identity(m.endpoint): m for m in new.mappings}
    kept: list[tuple[Mapping, Mapping]] = []
    for previous in old.mappings:
        replacement = updated.get(endpoint_identity(previous.endpoint))
        if replacement is None:
            raise MinorUpdateError("Interface update has missing endpoints")
        kept.append((previous, replacement))
    if any(_frozen_part(previous) != _frozen_part(current) for previous, current in kept):
        raise MinorUpdateError("Interface update contains incompatible endpoint changes")


def _frozen_part(mapping: Mapping) -> Mapping:
    """The mapping without the attributes a minor update is allowed to change."""
    return dataclasses.replace(
        mapping,
        doc=None,
        description=None,
        explicit_timestamp=False,
        retention=Retention.DISCARD,
        expiry=0,
    )
