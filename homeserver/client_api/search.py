"""Servlet: ``POST /search`` (spec: Client-Server API, "Server Side Search").
The domain is :class:`homeserver.rooms.features.search.SearchService`.
"""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, search = c["auth"], c["search"]

    async def post_search(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        next_batch = request.arg("next_batch") or None
        return 200, await search.search(requester.user_id, request.json(), next_batch)

    router.add("POST", _V3 + r"/search", post_search)
