"""Room aliases and the published room directory (spec: directory.yaml,
list_public_rooms.yaml).

``GET /directory/room/{roomAlias}``, ``GET /directory/list/room/{roomId}`` and
``GET /publicRooms`` need no access token (the spec gives them no security scheme).
"""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg, optional, require
from homeserver.ids import parse_room_id
from homeserver.rooms.features.directory import room_types_filter
from homeserver.rooms.features.service import RoomService

_C = "/_matrix/client/(?:v3|r0)"


def register(router: Router, *, auth: Any, room_service: RoomService) -> None:
    directory = room_service.directory

    async def put_alias(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        await directory.create_alias(requester.user_id, request.path["alias"],
                                     parse_room_id(require(body, "room_id", str)))
        return 200, {}

    async def get_alias(request: ApiRequest) -> tuple[int, Any]:
        return 200, await directory.resolve_alias(request.path["alias"])

    async def delete_alias(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await directory.delete_alias(requester.user_id, request.path["alias"])
        return 200, {}

    async def room_aliases(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        aliases = await directory.local_aliases(parse_room_id(request.path["room_id"]),
                                                requester.user_id)
        return 200, {"aliases": aliases}

    async def get_visibility(request: ApiRequest) -> tuple[int, Any]:
        visibility = await directory.get_visibility(parse_room_id(request.path["room_id"]))
        return 200, {"visibility": visibility}

    async def put_visibility(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json(allow_empty=True)
        await directory.set_visibility(requester.user_id,
                                       parse_room_id(request.path["room_id"]),
                                       optional(body, "visibility", str, "public"))
        return 200, {}

    async def public_rooms_get(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True, optional=True)
        return 200, await directory.public_rooms(
            limit=int_arg(request.arg("limit"), "limit", 0),
            since=request.arg("since"), server=request.arg("server"))

    async def public_rooms_post(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        body = request.json(allow_empty=True)
        search = optional(body, "filter", dict, {})
        limit = optional(body, "limit", int, 0)
        return 200, await directory.public_rooms(
            limit=limit, since=optional(body, "since", str),
            search_term=optional(search, "generic_search_term", str),
            room_types=room_types_filter(search.get("room_types")),
            server=request.arg("server"))

    alias = _C + "/directory/room/(?P<alias>[^/]+)"
    router.add("PUT", alias, put_alias)
    router.add("GET", alias, get_alias)
    router.add("DELETE", alias, delete_alias)
    router.add("GET", _C + "/rooms/(?P<room_id>[^/]+)/aliases", room_aliases)
    listing = _C + "/directory/list/room/(?P<room_id>[^/]+)"
    router.add("GET", listing, get_visibility)
    router.add("PUT", listing, put_visibility)
    router.add("GET", _C + "/publicRooms", public_rooms_get)
    router.add("POST", _C + "/publicRooms", public_rooms_post)
