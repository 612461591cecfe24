"""``POST /user/{userId}/filter`` and ``GET /user/{userId}/filter/{filterId}``
(spec: Client-Server API, "Filtering"; filter.yaml).

A filter is validated before it is stored (``M_BAD_JSON`` if malformed), so a stored
filter always parses when /sync uses it. Users upload and read only their own.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import Forbidden, NotFound
from homeserver.http.server import ApiRequest, Router
from homeserver.sync.filters import parse_filter

_USER = "/_matrix/client/(?:v3|r0)/user/(?P<user_id>[^/]+)"


def register(router: Router, *, auth: Any, filters: Any) -> None:
    """``filters``: ``store.filters``."""

    async def upload(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        if requester.user_id != request.path["user_id"]:
            raise Forbidden("Cannot create filters for other users")
        body = request.json()
        parse_filter(body)
        return 200, {"filter_id": await filters.add_filter(requester.user_id, body)}

    async def download(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        if requester.user_id != request.path["user_id"]:
            raise Forbidden("Cannot get filters for other users")
        stored = await filters.get_filter(requester.user_id, request.path["filter_id"])
        if stored is None:
            raise NotFound("No such filter")
        return 200, stored

    router.add("POST", _USER + "/filter", upload)
    router.add("GET", _USER + "/filter/(?P<filter_id>[^/]+)", download)
