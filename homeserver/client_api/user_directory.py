"""Servlet: ``POST /user_directory/search`` (spec: Client-Server API, "User
directory"). The domain is :class:`homeserver.user_directory.UserDirectoryService`.
"""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require
from homeserver.user_directory import DEFAULT_LIMIT

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, directory = c["auth"], c["user_directory"]

    async def post_search(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        term = require(body, "search_term", str)
        limit = optional(body, "limit", int, DEFAULT_LIMIT)
        return 200, await directory.search(requester.user_id, term, limit)

    router.add("POST", _V3 + r"/user_directory/search", post_search)
