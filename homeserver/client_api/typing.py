"""``PUT /rooms/{roomId}/typing/{userId}`` (spec: Client-Server API, "Typing
Notifications"; typing.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require
from homeserver.ids import parse_room_id
from homeserver.sync.typing_notifications import TypingNotifications

_C = "/_matrix/client/(?:v3|r0)"


def register(router: Router, *, auth: Any, typing: TypingNotifications) -> None:
    async def set_typing(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json()
        is_typing = require(body, "typing", bool)
        timeout = optional(body, "timeout", int)
        await typing.set_typing(requester.user_id, request.path["user_id"],
                                parse_room_id(request.path["room_id"]), is_typing, timeout)
        return 200, {}

    router.add("PUT", _C + "/rooms/(?P<room_id>[^/]+)/typing/(?P<user_id>[^/]+)",
               set_typing)
