"""Serving membership handshakes to other servers: make_join/send_join (v2),
make_leave/send_leave (v2), make_knock/send_knock, and invites of our users (v2).

Spec: server-server API "Joining Rooms", "Knocking upon a room", "Inviting to a room",
"Leaving Rooms (Rejecting Invites)". A remote user's membership event goes through the
room's actor like any remote PDU (``RoomActor.apply_remote_pdus``); its signatures and
hash are checked first, here, outside the actor. A template answered by ``make_*`` is
what ``RoomWriter.template`` would build for a local event; the auth rules are tried
on it so a refused join is a 403 now, not a rejected event later.

An invite to a room we do not hold is kept in ``store.remote_memberships`` and
announced on the room stream (see that module), so it reaches the invitee's /sync.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

from federation.transactions import refuse_banned
from homeserver.errors import (
    AuthError, BadJson, Forbidden, IncompatibleRoomVersion, InvalidParam, NotFound)
from homeserver.events.builder import add_event_signature
from homeserver.events.client_format import strip_state_event
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.ids import UserID
from homeserver.rooms.actor.room_writer import Outcome
from homeserver.rooms.rules.auth import JOIN_RULES_KEY, check_auth_rules
from homeserver.rooms.rules.power_levels import CREATE_KEY

#: the outcomes of apply_remote_pdus that mean "the membership is in the room"
_TAKEN = (Outcome.ACCEPTED, Outcome.DUPLICATE)
#: make_join/make_knock without ?ver= means the sender supports only v1 (spec)
_DEFAULT_VERS = ("1",)


class Rooms(Protocol):
    def known(self, room_id: str) -> bool: ...
    async def get(self, room_id: str) -> Any: ...


class Checker(Protocol):
    async def check_one(self, room_version: RoomVersion, event: Any) -> PDU: ...


class Authoriser(Protocol):
    async def restricted_join_authoriser(self, actor: Any, state: Any,
                                         user_id: str) -> str | None: ...


class InviteInbox(Protocol):
    """Where an invite to a room we do not hold is kept (``RemoteInvites``)."""

    async def receive_invite(self, pdu: PDU, stripped_state: Sequence[dict]) -> None: ...


class StrippedState(Protocol):
    async def stripped_state(self, room_id: str, event_id: str | None = None, *,
                             members: Sequence[str] = ()) -> list[dict[str, Any]]: ...


class Users(Protocol):
    async def get_user(self, user_id: str) -> Any: ...


class MembershipServer:
    def __init__(self, *, server_name: str, rooms: Rooms, checker: Checker,
                 authoriser: Authoriser, invites: InviteInbox, stripped: StrippedState,
                 users: Users, signing_key: Any, now_ms: Any) -> None:
        self._server_name = server_name
        self._rooms = rooms
        self._checker = checker
        self._authoriser = authoriser
        self._invites = invites
        self._stripped = stripped
        self._users = users
        self._signing_key = signing_key
        self._now_ms = now_ms

    # -- make_* ---------------------------------------------------------------------
    async def _actor(self, origin: str, room_id: str) -> Any:
        """The room's actor; 404 if we do not hold it, 403 if its server ACL bans
        ``origin`` (spec: "Server Access Control Lists": membership endpoints too)."""
        if not self._rooms.known(room_id):
            raise NotFound(f"Unknown room {room_id}")
        actor = await self._rooms.get(room_id)
        await refuse_banned(origin, actor)
        return actor

    def _check_user(self, origin: str, user_id: str) -> None:
        try:
            user = UserID.parse(user_id)
        except Exception:
            raise BadJson(f"Invalid user ID {user_id!r}") from None
        if user.domain != origin:
            raise Forbidden(f"{origin} may not make membership events for {user_id}")

    async def make(self, origin: str, room_id: str, user_id: str, membership: str,
                   versions: Sequence[str] | None = None) -> dict[str, Any]:
        """GET make_join / make_leave / make_knock: a template of ``user_id``'s member
        event and the room version. 400 M_INCOMPATIBLE_ROOM_VERSION when the room's
        version is not in ``versions``; 403 when the auth rules would refuse it."""
        self._check_user(origin, user_id)
        actor = await self._actor(origin, room_id)
        version = actor.room_version
        if versions is not None and version.identifier not in (versions or _DEFAULT_VERS):
            raise IncompatibleRoomVersion(
                f"Your homeserver does not support the features required to "
                f"{membership} this room", room_version=version.identifier)
        if membership == "knock" and not version.knock_join_rule:
            raise IncompatibleRoomVersion("This room version does not support knocking",
                                          room_version=version.identifier)
        content: dict[str, Any] = {"membership": membership}
        partial = {"type": "m.room.member", "sender": user_id, "state_key": user_id,
                   "content": content}
        if membership == "join":
            state = await actor.current_state([("m.room.member", user_id), JOIN_RULES_KEY,
                                               CREATE_KEY])
            current = state.get(("m.room.member", user_id))
            if current is None or current.membership not in ("invite", "join"):
                authoriser = await self._authoriser.restricted_join_authoriser(
                    actor, state, user_id)
                if authoriser is not None:
                    content["join_authorised_via_users_server"] = authoriser
        event, auth_state = await actor.event_template(partial)
        event["origin_server_ts"] = self._now_ms()
        # the template is unsigned: try the rules on it (they never look at signatures)
        try:
            check_auth_rules(version, PDU(version, event, "$template"), auth_state)
        except AuthError as e:
            raise Forbidden(f"You are not allowed to {membership} this room: "
                            f"{e.message}") from None
        return {"event": event, "room_version": version.identifier}

    # -- send_* ---------------------------------------------------------------------
    async def _receive(self, origin: str, room_id: str, event_id: str, body: Any,
                       membership: str) -> tuple[Any, PDU]:
        actor = await self._actor(origin, room_id)
        version = actor.room_version
        if membership == "join" and version.restricted_join_rule:
            body = self._vouch(version, body)
        pdu = await self._checker.check_one(version, body)
        if pdu.event_id != event_id:
            raise BadJson(f"The event's ID is {pdu.event_id}, not {event_id}")
        if pdu.room_id != room_id:
            raise BadJson("The event is for another room")
        if pdu.type != "m.room.member" or pdu.membership != membership:
            raise BadJson(f"The event is not a {membership}")
        if pdu.state_key != pdu.sender:
            raise BadJson("The event's state_key must be its sender")
        self._check_user(origin, pdu.sender)
        [outcome] = await actor.apply_remote_pdus([pdu])
        if outcome.status not in _TAKEN:
            raise Forbidden(f"The {membership} was not accepted: {outcome.status}"
                            f"{' (' + outcome.reason + ')' if outcome.reason else ''}")
        return actor, pdu

    def _vouch(self, version: RoomVersion, body: Any) -> Any:
        """A restricted join naming one of our users as its authoriser gets our
        signature (spec: "Restricted rooms"): the resident server co-signs before the
        event is checked, since that signature is one the checks require. The auth
        rules then decide whether that user may really vouch."""
        content = body.get("content") if isinstance(body, dict) else None
        via = content.get("join_authorised_via_users_server") \
            if isinstance(content, dict) else None
        if not isinstance(via, str):
            return body
        try:
            domain = UserID.parse(via).domain
        except Exception:
            raise BadJson("join_authorised_via_users_server is not a user ID") from None
        if domain != self._server_name:
            raise Forbidden("join_authorised_via_users_server is not one of ours")
        try:
            return add_event_signature(version, body, self._server_name, self._signing_key)
        except Exception:
            raise BadJson("The join is not a valid event") from None

    async def send_join(self, origin: str, room_id: str, event_id: str,
                        body: Any) -> dict[str, Any]:
        """PUT /v2/send_join: the join goes into the room; the answer is the state
        before it and its auth chain (never omitting members)."""
        actor, pdu = await self._receive(origin, room_id, event_id, body, "join")
        state = await actor.state_at(pdu.event_id)
        state_events = list(state.values())
        chain = await actor.auth_chain([*(e.event_id for e in state_events),
                                        *pdu.auth_event_ids])
        members = await actor.members("join")
        servers = sorted({UserID.parse(m).domain for m in members} | {self._server_name})
        return {
            "origin": self._server_name,
            "event": dict(pdu.get_dict()),
            "state": [dict(e.get_dict()) for e in state_events],
            "auth_chain": [dict(e.get_dict()) for e in chain],
            "members_omitted": False,
            "servers_in_room": servers,
        }

    async def send_leave(self, origin: str, room_id: str, event_id: str,
                         body: Any) -> dict[str, Any]:
        """PUT /v2/send_leave: an empty object once the leave is in the room."""
        await self._receive(origin, room_id, event_id, body, "leave")
        return {}

    async def send_knock(self, origin: str, room_id: str, event_id: str,
                         body: Any) -> dict[str, Any]:
        """PUT /v1/send_knock: the stripped state the knocker may see."""
        _actor, pdu = await self._receive(origin, room_id, event_id, body, "knock")
        return {"knock_room_state": await self._stripped.stripped_state(
            room_id, pdu.event_id)}

    # -- invites --------------------------------------------------------------------
    async def invite(self, origin: str, room_id: str, event_id: str,
                     body: Any) -> dict[str, Any]:
        """PUT /v2/invite: one of our users is invited; we sign the event and keep it
        (in the room if we hold it, else in ``remote_memberships``)."""
        if not isinstance(body, Mapping):
            raise BadJson("body must be a JSON object")
        version_id = body.get("room_version")
        version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) \
            else None
        if version is None:
            raise IncompatibleRoomVersion(f"Room version {version_id!r} is not supported",
                                          room_version=version_id)
        pdu = await self._checker.check_one(version, body.get("event"))
        if pdu.event_id != event_id or pdu.room_id != room_id:
            raise BadJson("The event does not match the request's room and event IDs")
        if pdu.type != "m.room.member" or pdu.membership != "invite" \
                or not isinstance(pdu.state_key, str):
            raise BadJson("The event is not an invite")
        if "third_party_invite" not in pdu.content:
            self._check_user(origin, pdu.sender)
        try:
            invitee = UserID.parse(pdu.state_key)
        except Exception:
            raise BadJson("The invite's state_key is not a user ID") from None
        if invitee.domain != self._server_name:
            raise InvalidParam("The invitee is not on this server")
        if await self._users.get_user(pdu.state_key) is None:
            raise NotFound(f"Unknown user {pdu.state_key}")
        signed = PDU.from_dict(version, add_event_signature(
            version, pdu.get_dict(), self._server_name, self._signing_key))
        stripped = body.get("invite_room_state")
        stripped = [e for e in stripped if isinstance(e, dict)] \
            if isinstance(stripped, list) else []
        kept = False
        if self._rooms.known(room_id):
            actor = await self._rooms.get(room_id)
            await refuse_banned(origin, actor)
            [outcome] = await actor.apply_remote_pdus([signed])
            kept = outcome.status in _TAKEN
            if outcome.status == Outcome.REJECTED:
                raise Forbidden(f"The invite is not allowed: {outcome.reason}")
        if not kept:
            await self._invites.receive_invite(
                signed, [*stripped, strip_state_event(signed)])
        return {"event": dict(signed.get_dict())}


def register(router: Any, *, authenticated: Any, server: MembershipServer) -> None:
    """The membership servlets, each behind X-Matrix auth (``authenticated``)."""
    room, user, event = r"(?P<room_id>[^/]+)", r"(?P<user_id>[^/]+)", r"(?P<event_id>[^/]+)"

    def make(membership: str, versioned: bool) -> Any:
        async def handler(request: Any) -> tuple[int, Any]:
            versions = request.args("ver") if versioned else None
            return 200, await server.make(request.requester, request.path["room_id"],
                                          request.path["user_id"], membership, versions)
        return handler

    def send(method: Any) -> Any:
        async def handler(request: Any) -> tuple[int, Any]:
            return 200, await method(request.requester, request.path["room_id"],
                                     request.path["event_id"], request.json())
        return handler

    add = router.add
    add("GET", rf"/_matrix/federation/v1/make_join/{room}/{user}",
        authenticated(make("join", True)))
    add("GET", rf"/_matrix/federation/v1/make_leave/{room}/{user}",
        authenticated(make("leave", False)))
    add("GET", rf"/_matrix/federation/v1/make_knock/{room}/{user}",
        authenticated(make("knock", True)))
    add("PUT", rf"/_matrix/federation/v2/send_join/{room}/{event}",
        authenticated(send(server.send_join)))
    add("PUT", rf"/_matrix/federation/v2/send_leave/{room}/{event}",
        authenticated(send(server.send_leave)))
    add("PUT", rf"/_matrix/federation/v1/send_knock/{room}/{event}",
        authenticated(send(server.send_knock)))
    add("PUT", rf"/_matrix/federation/v2/invite/{room}/{event}",
        authenticated(send(server.invite)))
