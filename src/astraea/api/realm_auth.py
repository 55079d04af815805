"""Authorization of realm-scoped routes (`/<api>/v1/<realm>/...`) with the realm's own key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from astraea.api.auth import authorize
from astraea.api.context import ApiContext, get_context
from astraea.api.errors import ApiError
from astraea.storage.base import Realm

# `/<api>/v1/<realm>` precede the path that claim regexes see.
_REALM_PREFIX_SEGMENTS = 3


@dataclass(slots=True)
class RealmRequest:
    context: ApiContext
    realm: Realm


def realm_authorizer(
    claim: str, unknown_realm: ApiError
) -> Callable[[Request, str], Awaitable[RealmRequest]]:
    """A dependency that loads the realm named in the path and checks the token's `claim`.

    `unknown_realm` is what a missing realm answers: Realm Management and Pairing say 403
    before looking at the token, AppEngine says 401.
    """

    async def dependency(request: Request, realm_name: str) -> RealmRequest:
        context = get_context(request)
        realm = await context.storage.realms.get(realm_name)
        if realm is None:
            raise unknown_realm
        if not context.settings.disable_auth:
            authorize(
                request,
                claim=claim,
                public_key_pem=realm.jwt_public_key_pem,
                skip_segments=_REALM_PREFIX_SEGMENTS,
            )
        return RealmRequest(context, realm)

    return dependency
