"""Account data and room tags (spec: Client-Server API, "Client Config", "Room
Tagging"; account-data.yaml, tags.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.sync.account_data import AccountDataService

_USER = "/_matrix/client/(?:v3|r0)/user/(?P<user_id>[^/]+)"
_ROOM = _USER + "/rooms/(?P<room_id>[^/]+)"


def register(router: Router, *, auth: Any, account_data: AccountDataService) -> None:
    async def put_global(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await account_data.set(requester.user_id, request.path["user_id"],
                               request.path["type"], request.json())
        return 200, {}

    async def get_global(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await account_data.get(requester.user_id, request.path["user_id"],
                                           request.path["type"])

    async def put_room(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await account_data.set(requester.user_id, request.path["user_id"],
                               request.path["type"], request.json(),
                               room_id=request.path["room_id"])
        return 200, {}

    async def get_room(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await account_data.get(requester.user_id, request.path["user_id"],
                                           request.path["type"],
                                           room_id=request.path["room_id"])

    async def get_tags(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await account_data.get_tags(requester.user_id, request.path["user_id"],
                                                request.path["room_id"])

    async def put_tag(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await account_data.add_tag(requester.user_id, request.path["user_id"],
                                   request.path["room_id"], request.path["tag"],
                                   request.json())
        return 200, {}

    async def delete_tag(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await account_data.remove_tag(requester.user_id, request.path["user_id"],
                                      request.path["room_id"], request.path["tag"])
        return 200, {}

    router.add("PUT", _USER + "/account_data/(?P<type>[^/]+)", put_global)
    router.add("GET", _USER + "/account_data/(?P<type>[^/]+)", get_global)
    router.add("PUT", _ROOM + "/account_data/(?P<type>[^/]+)", put_room)
    router.add("GET", _ROOM + "/account_data/(?P<type>[^/]+)", get_room)
    router.add("GET", _ROOM + "/tags", get_tags)
    router.add("PUT", _ROOM + "/tags/(?P<tag>[^/]+)", put_tag)
    router.add("DELETE", _ROOM + "/tags/(?P<tag>[^/]+)", delete_tag)
