"""Servlet: ``POST /user/{userId}/openid/request_token`` (spec: Client-Server API,
"OpenID"); the domain is :class:`homeserver.accounts.openid.OpenIdService`."""

from __future__ import annotations

from typing import Any

from homeserver.accounts.openid import OpenIdService
from homeserver.http.server import ApiRequest, Router


def register(router: Router, *, auth: Any, openid: OpenIdService) -> None:
    async def request_token(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        request.json(allow_empty=True)  # the body is an empty object; still must be JSON
        return 200, await openid.request_token(requester.user_id, request.path["user_id"])

    router.add("POST", r"/_matrix/client/(?:v3|r0)/user/(?P<user_id>[^/]+)/openid/"
               r"request_token", request_token)
