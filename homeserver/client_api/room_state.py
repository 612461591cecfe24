"""Room state: ``GET /rooms/{roomId}/state``, ``GET/PUT
/rooms/{roomId}/state/{eventType}/{stateKey}`` (spec: room_state.yaml, rooms.yaml).

The state key may be empty, with or without the trailing slash. Members who left
read the state as it was when they left; non-members get M_FORBIDDEN unless the room
is world-readable.
"""

from __future__ import annotations

from typing import Any

from homeserver.client_api.delayed_events import delay_of, schedule_from_request
from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.ids import parse_room_id
from homeserver.rooms.features.service import RoomService

_STATE = "/_matrix/client/(?:v3|r0)/rooms/(?P<room_id>[^/]+)/state"
_KEYED = [_STATE + "/(?P<event_type>[^/]+)/?", _STATE + "/(?P<event_type>[^/]+)/(?P<state_key>[^/]+)"]


def register(router: Router, *, auth: Any, room_service: RoomService,
             delayed_events: Any = None) -> None:
    """``delayed_events`` (a DelayedEventScheduler) serves MSC4140's
    ``?org.matrix.msc4140.delay=`` on state PUTs."""
    history = room_service.history

    async def get_all(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await history.state(parse_room_id(request.path["room_id"]),
                                        requester.user_id)

    async def get_one(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        room_id = parse_room_id(request.path["room_id"])
        form = request.arg("format", "content")
        if form not in ("content", "event"):
            raise InvalidParam("format must be 'content' or 'event'")
        event = await history.state_event(room_id, requester.user_id,
                                          request.path["event_type"],
                                          request.path.get("state_key") or "")
        if form == "event":
            return 200, await history.serialize_one(room_id, event, requester.user_id)
        return 200, dict(event.content)

    async def put_one(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        delay_ms = None if delayed_events is None else delay_of(request)
        if delay_ms is not None:
            return await schedule_from_request(
                delayed_events, request, requester, delay_ms=delay_ms,
                event_type=request.path["event_type"],
                state_key=request.path.get("state_key") or "", content=request.json())
        event_id = await room_service.set_state(
            parse_room_id(request.path["room_id"]), requester.user_id,
            request.path["event_type"], request.path.get("state_key") or "",
            request.json(), is_guest=requester.is_guest)
        return 200, {"event_id": event_id}

    router.add("GET", _STATE, get_all)
    for pattern in _KEYED:
        router.add("GET", pattern, get_one)
        router.add("PUT", pattern, put_one)
