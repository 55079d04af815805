"""PolicyRepository contract: round trips, install errors, policies in use."""

from __future__ import annotations

import pytest
from trigger_builders import make_policy, make_trigger

from astraea.storage.base import AlreadyExists, NotFound, PolicyInUse, Storage


async def test_policies_round_trip(storage: Storage, realm: str) -> None:
    policy = make_policy()

    await storage.policies.install(realm, policy)
    await storage.policies.install(realm, make_policy("another"))

    assert await storage.policies.get(realm, "retry") == policy
    assert await storage.policies.get(realm, "missing") is None
    assert await storage.policies.get("other", "retry") is None
    assert await storage.policies.list_names(realm) == ["another", "retry"]
    assert await storage.policies.list_names("other") == []


async def test_policy_install_errors(storage: Storage, realm: str) -> None:
    await storage.policies.install(realm, make_policy())

    with pytest.raises(AlreadyExists, match="retry"):
        await storage.policies.install(realm, make_policy())
    with pytest.raises(NotFound, match="other"):
        await storage.policies.install("other", make_policy())


async def test_a_policy_in_use_cannot_be_deleted(storage: Storage, realm: str) -> None:
    await storage.policies.install(realm, make_policy())
    await storage.triggers.install(realm, make_trigger(policy="retry"))

    with pytest.raises(PolicyInUse, match="retry"):
        await storage.policies.delete(realm, "retry")
    assert await storage.policies.get(realm, "retry") is not None

    await storage.triggers.delete(realm, "t")
    assert await storage.policies.delete(realm, "retry") is True
    assert await storage.policies.delete(realm, "retry") is False
    assert await storage.policies.list_names(realm) == []
