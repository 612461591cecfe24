"""OpenID tokens: a user proves their identity to a third party (an integration
manager, a widget) without handing over their access token.

Spec: Client-Server API, "OpenID" (``POST /user/{userId}/openid/request_token``) and
Server-Server API, "OpenID" (``GET /openid/userinfo``): the client gets a short-lived
token, gives it to the third party, which asks the user's server (over federation, on
the federation port) whom it belongs to. Tokens are random, stored hashed, and expire
after :data:`TOKEN_LIFETIME_MS`; an unknown or expired one is 401 M_UNKNOWN_TOKEN.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

from homeserver.errors import Forbidden, UnknownToken
from homeserver.ids import UserID

#: one hour, as Synapse
TOKEN_LIFETIME_MS = 3600 * 1000


class OpenIdService:
    def __init__(self, *, store: Any, server_name: str, now_ms: Callable[[], int]) -> None:
        self._tokens = store.openid_tokens
        self._server_name = server_name
        self._now_ms = now_ms

    async def request_token(self, requester_user_id: str, user_id: str) -> dict[str, Any]:
        """A new token for ``user_id``, who must be the requester (M_FORBIDDEN)."""
        UserID.parse(user_id)
        if requester_user_id != user_id:
            raise Forbidden("Cannot request an OpenID token for another user")
        token = secrets.token_urlsafe(32)
        await self._tokens.add(token, user_id, self._now_ms() + TOKEN_LIFETIME_MS)
        return {"access_token": token, "token_type": "Bearer",
                "matrix_server_name": self._server_name,
                "expires_in": TOKEN_LIFETIME_MS // 1000}

    async def userinfo(self, access_token: str | None) -> dict[str, str]:
        """``{"sub": user_id}`` for a live token."""
        # a missing token is as unknown as a wrong one (the spec's only error is 401)
        user_id = None if not access_token else \
            await self._tokens.user_for(access_token, self._now_ms())
        if user_id is None:
            raise UnknownToken("Access token unknown or expired")
        return {"sub": user_id}
