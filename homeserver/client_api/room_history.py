"""Reading a room's timeline and members: ``/messages``, ``/context/{eventId}``,
``/event/{eventId}``, ``/members``, ``/joined_members`` (spec: message_pagination.yaml,
event_context.yaml, rooms.yaml). History visibility applies to all of them.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam, MissingParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.ids import parse_event_id, parse_room_id
from homeserver.rooms.features.history import DEFAULT_LIMIT, MAX_LIMIT
from homeserver.rooms.features.service import RoomService
from homeserver.rooms.rules.event_filter import RoomEventFilter
from homeserver.rooms.rules.transactions import scope_of

_ROOM = "/_matrix/client/(?:v3|r0)/rooms/(?P<room_id>[^/]+)"
_MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


def _limit(request: ApiRequest, event_filter: RoomEventFilter) -> int:
    default = event_filter.limit or DEFAULT_LIMIT
    return int_arg(request.arg("limit"), "limit", default, maximum=MAX_LIMIT)


def _membership_arg(request: ApiRequest, name: str) -> str | None:
    value = request.arg(name)
    if value is not None and value not in _MEMBERSHIPS:
        raise InvalidParam(f"{name} must be one of {', '.join(_MEMBERSHIPS)}")
    return value


def register(router: Router, *, auth: Any, room_service: RoomService) -> None:
    history = room_service.history

    async def messages(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        direction = request.arg("dir")
        if direction is None:
            raise MissingParam("Missing parameter: dir")
        event_filter = RoomEventFilter.from_query(request.arg("filter"))
        return 200, await history.messages(
            parse_room_id(request.path["room_id"]), requester.user_id,
            direction=direction, from_token=request.arg("from"),
            to_token=request.arg("to"), limit=_limit(request, event_filter),
            event_filter=event_filter, scope=scope_of(requester))

    async def context(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        event_filter = RoomEventFilter.from_query(request.arg("filter"))
        return 200, await history.context(
            parse_room_id(request.path["room_id"]), requester.user_id,
            parse_event_id(request.path["event_id"]), limit=_limit(request, event_filter),
            event_filter=event_filter, scope=scope_of(requester))

    async def event(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await history.event(
            parse_room_id(request.path["room_id"]), requester.user_id,
            parse_event_id(request.path["event_id"]), scope=scope_of(requester))

    async def members(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        chunk = await history.members(
            parse_room_id(request.path["room_id"]), requester.user_id,
            at=request.arg("at"), membership=_membership_arg(request, "membership"),
            not_membership=_membership_arg(request, "not_membership"))
        return 200, {"chunk": chunk}

    async def joined_members(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await history.joined_members(parse_room_id(request.path["room_id"]),
                                                 requester.user_id)

    router.add("GET", _ROOM + "/messages", messages)
    router.add("GET", _ROOM + "/context/(?P<event_id>[^/]+)", context)
    router.add("GET", _ROOM + "/event/(?P<event_id>[^/]+)", event)
    router.add("GET", _ROOM + "/members", members)
    router.add("GET", _ROOM + "/joined_members", joined_members)
