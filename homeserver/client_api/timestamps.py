"""``GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`` (spec: "Timestamp to
event"; timestamp_to_event.yaml). Thin: see :mod:`homeserver.rooms.features.timestamps`."""

from __future__ import annotations

from typing import Any

from homeserver.errors import MissingParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.ids import parse_room_id
from homeserver.rooms.features.timestamps import TimestampToEvent


def register(router: Router, *, auth: Any, finder: TimestampToEvent) -> None:
    async def timestamp_to_event(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)  # not among guests' endpoints
        for name in ("ts", "dir"):
            if request.arg(name) is None:
                raise MissingParam(f"Missing parameter: {name}")
        return 200, await finder.find(parse_room_id(request.path["room_id"]),
                                      requester.user_id, int_arg(request.arg("ts"), "ts", 0),
                                      request.arg("dir"))

    router.add("GET", "/_matrix/client/v1/rooms/(?P<room_id>[^/]+)/timestamp_to_event",
               timestamp_to_event)
