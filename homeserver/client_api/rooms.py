"""Room creation, membership, sending, redaction, joined rooms and upgrades.

Spec: Client-Server API — create_room.yaml, joining.yaml, inviting.yaml, leaving.yaml,
kicking.yaml, banning.yaml, knocking.yaml, room_send.yaml, redaction.yaml,
list_joined_rooms.yaml, room_upgrades.yaml. Thin servlets over
:class:`homeserver.rooms.features.service.RoomService`.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require
from homeserver.ids import parse_event_id, parse_room_id
from homeserver.rooms.features.service import RoomService, Txn
from homeserver.rooms.rules.transactions import scope_of

_C = "/_matrix/client/(?:v3|r0)"
_ROOM = _C + "/rooms/(?P<room_id>[^/]+)"
#: request parameters of the join endpoints, not member event content
_JOIN_PARAMETERS = ("reason", "membership", "third_party_signed",
                    "join_authorised_via_users_server")


def register(router: Router, *, auth: Any, room_service: RoomService,
             third_party_invites: Any = None) -> None:
    """``third_party_invites``: invites by email address (``POST /invite`` with
    ``medium``/``address``); without it they are 400 M_INVALID_PARAM."""
    membership = room_service.membership

    async def create_room(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        room_id = await room_service.create_room(requester, request.json())
        return 200, {"room_id": room_id}

    def join_content(body: dict[str, Any]) -> dict[str, Any]:
        """The body's other keys go into the member event (Synapse keeps them; sytest
        "POST /join/:room_id can join a room with custom content")."""
        return {k: v for k, v in body.items() if k not in _JOIN_PARAMETERS}

    async def join_by_id_or_alias(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json(allow_empty=True)
        room_id = await membership.join(
            request.path["room"], requester.user_id,
            reason=optional(body, "reason", str), content=join_content(body),
            is_guest=requester.is_guest,
            servers=request.args("server_name") + request.args("via"))
        return 200, {"room_id": room_id}

    async def join_by_id(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json(allow_empty=True)
        room_id = await membership.join(
            parse_room_id(request.path["room_id"]), requester.user_id,
            reason=optional(body, "reason", str), content=join_content(body),
            is_guest=requester.is_guest)
        return 200, {"room_id": room_id}

    async def knock(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json(allow_empty=True)
        room_id = await membership.knock(
            request.path["room"], requester.user_id, reason=optional(body, "reason", str),
            servers=request.args("server_name") + request.args("via"))
        return 200, {"room_id": room_id}

    async def invite(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        if "user_id" not in body and ("medium" in body or "address" in body):
            if third_party_invites is None:
                raise InvalidParam("third-party invites are not supported by this server")
            await third_party_invites.invite(
                parse_room_id(request.path["room_id"]), requester.user_id,
                id_server=require(body, "id_server", str),
                id_access_token=require(body, "id_access_token", str),
                medium=require(body, "medium", str), address=require(body, "address", str))
            return 200, {}
        await membership.change(parse_room_id(request.path["room_id"]), requester.user_id,
                                require(body, "user_id", str), "invite",
                                reason=optional(body, "reason", str))
        return 200, {}

    async def leave(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json(allow_empty=True)
        await membership.change(parse_room_id(request.path["room_id"]), requester.user_id,
                                requester.user_id, "leave",
                                reason=optional(body, "reason", str), ratelimit=False)
        return 200, {}

    async def forget(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await membership.forget(parse_room_id(request.path["room_id"]), requester.user_id)
        return 200, {}

    def moderation(kind: str):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            requester = await auth.authenticate(request)
            body = request.json()
            await membership.moderate(kind, parse_room_id(request.path["room_id"]),
                                      requester.user_id, require(body, "user_id", str),
                                      reason=optional(body, "reason", str))
            return 200, {}
        return handler

    async def send(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        txn_id = request.path.get("txn_id")
        event_id = await room_service.send_event(
            parse_room_id(request.path["room_id"]), requester.user_id,
            request.path["event_type"], request.json(),
            txn=None if txn_id is None else Txn(scope_of(requester), txn_id),
            ratelimit=True)
        return 200, {"event_id": event_id}

    async def redact(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json(allow_empty=True)
        txn_id = request.path.get("txn_id")
        event_id = await room_service.redact(
            parse_room_id(request.path["room_id"]), requester.user_id,
            parse_event_id(request.path["event_id"]), reason=optional(body, "reason", str),
            txn=None if txn_id is None else Txn(scope_of(requester), txn_id))
        return 200, {"event_id": event_id}

    async def joined_rooms(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, {"joined_rooms": await room_service.joined_room_ids(requester.user_id)}

    async def upgrade(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        new_room = await room_service.upgrader.upgrade(
            parse_room_id(request.path["room_id"]), requester.user_id,
            require(body, "new_version", str),
            additional_creators=optional(body, "additional_creators", list))
        return 200, {"replacement_room": new_room}

    router.add("POST", _C + "/createRoom", create_room)
    router.add("POST", _C + "/join/(?P<room>[^/]+)", join_by_id_or_alias)
    router.add("POST", _C + "/knock/(?P<room>[^/]+)", knock)
    router.add("POST", _ROOM + "/join", join_by_id)
    router.add("POST", _ROOM + "/invite", invite)
    router.add("POST", _ROOM + "/leave", leave)
    router.add("POST", _ROOM + "/forget", forget)
    for kind in ("kick", "ban", "unban"):
        router.add("POST", _ROOM + "/" + kind, moderation(kind))
    router.add("PUT", _ROOM + "/send/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)", send)
    # without a transaction ID (no retry safety): not in the spec, but Synapse serves
    # it and sytest uses it ("POST /rooms/:room_id/send/:event_type sends a message")
    router.add("POST", _ROOM + "/send/(?P<event_type>[^/]+)", send)
    router.add(("PUT", "POST"),
               _ROOM + "/redact/(?P<event_id>[^/]+)/(?P<txn_id>[^/]+)", redact)
    router.add("POST", _ROOM + "/redact/(?P<event_id>[^/]+)", redact)
    router.add("GET", _C + "/joined_rooms", joined_rooms)
    router.add("POST", _ROOM + "/upgrade", upgrade)
