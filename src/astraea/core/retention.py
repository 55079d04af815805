"""How long a datastream sample is kept (data-model.md, Retention)."""

from __future__ import annotations

from astraea.core.interface import DatabaseRetentionPolicy, Mapping


def retention_seconds(mapping: Mapping, realm_maximum: int | None) -> int | None:
    """The realm's maximum retention, or the mapping's TTL when it uses one and is shorter;
    None keeps the sample forever. A realm maximum of 0 means unset."""
    limits = [realm_maximum] if realm_maximum else []
    uses_ttl = mapping.database_retention_policy is DatabaseRetentionPolicy.USE_TTL
    if uses_ttl and mapping.database_retention_ttl:
        limits.append(mapping.database_retention_ttl)
    return min(limits) if limits else None
