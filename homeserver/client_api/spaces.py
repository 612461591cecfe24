"""``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` (spec: "Spaces";
space_hierarchy.yaml). Thin: the walk is
:class:`homeserver.rooms.features.hierarchy.SpaceHierarchy`'s.
"""

from __future__ import annotations

from typing import Any

from homeserver.client_api.sync import bool_arg
from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.ids import parse_room_id
from homeserver.rooms.features.hierarchy import (
    DEFAULT_LIMIT, MAX_LIMIT, HierarchyRequest, SpaceHierarchy)


def register(router: Router, *, auth: Any, hierarchy: SpaceHierarchy) -> None:
    async def get_hierarchy(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        max_depth = request.arg("max_depth")
        limit = int_arg(request.arg("limit"), "limit", DEFAULT_LIMIT, maximum=MAX_LIMIT)
        if limit < 1:
            raise InvalidParam("limit must be greater than 0")
        return 200, await hierarchy.hierarchy(HierarchyRequest(
            room_id=parse_room_id(request.path["room_id"]),
            user_id=requester.user_id,
            suggested_only=bool_arg(request.arg("suggested_only"), "suggested_only"),
            max_depth=None if max_depth is None else int_arg(max_depth, "max_depth", 0),
            limit=limit, from_token=request.arg("from")))

    router.add("GET", "/_matrix/client/v1/rooms/(?P<room_id>[^/]+)/hierarchy",
               get_hierarchy)
