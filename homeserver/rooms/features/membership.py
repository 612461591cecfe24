"""Membership changes of local users: join, invite, leave, kick, ban, unban, knock and
forget (spec: Client-Server API, "Room membership"; rooms v3-v12 auth rules).

Every change is one ``m.room.member`` event created by the room's actor, so the auth
rules decide who may do what (a refusal is M_FORBIDDEN, 403). This module adds what
the rules do not know:

- the event content: ``displayname``/``avatar_url`` from the profile for joins (and
  for invites of local users, as clients show them), ``reason``, ``is_direct``;
- a repeated change with identical content (join while joined, invite while invited)
  answers with the existing event instead of adding a duplicate;
- guests may join only rooms whose ``m.room.guest_access`` is ``can_join``, and are
  made to leave when it stops being so (spec: "Guest Access", server behaviour);
- joins of restricted rooms (v8+) name a local member who may invite as
  ``join_authorised_via_users_server``, once the joiner is found in an allowed room;
- rate limits ``rc_joins.local`` and ``rc_invites.per_room``/``per_user``;
- when a room is upgraded, ``carry_over_settings`` carries each local member's tags
  and ``m.direct`` entry over, and whatever ``add_settings_copier`` adds (spec: "Room
  Upgrades", server behaviour).

Rooms held elsewhere are reached through a ``RemoteRooms`` collaborator (federation:
``federation/membership_client.py``, given by ``set_remote``): joining a room we do not
hold, inviting a user of another server, rejecting an invite to a room we do not hold.
Without one (no federation), they fail with a clear error. Knocking on a room we do
not hold goes the same way.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.errors import (
    BadJson, Forbidden, GuestAccessForbidden, InvalidParam, MatrixError, NotFound,
    UnknownError)
from homeserver.events.pdu import PDU
from homeserver.ids import RoomAlias, UserID, parse_room_id
from homeserver.rooms.rules import power_levels as pl
from homeserver.rooms.rules.auth import JOIN_RULES_KEY
from homeserver.rooms.rules.power_levels import CREATE_KEY, POWER_LEVELS_KEY

log = Logger()

#: ``await copier(user_id, old_room_id, new_room_id)``: see ``add_settings_copier``
SettingsCopier = Callable[[str, str, str], Awaitable[None]]
MEMBERSHIPS = frozenset({"join", "invite", "leave", "ban", "knock"})
#: a repeated change to one of these with the same content changes nothing
_IDEMPOTENT = frozenset({"join", "invite", "ban", "knock"})
GUEST_ACCESS_KEY = ("m.room.guest_access", "")
FEDERATION_MISSING = "federation with other servers is not yet supported"


class RemoteRooms(Protocol):
    """Membership of rooms held by other servers (``federation.membership_client``)."""

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]: ...
    async def join(self, room_id: str, user_id: str, servers: Iterable[str],
                   content: Mapping[str, Any]) -> str: ...
    async def leave(self, room_id: str, user_id: str, servers: Iterable[str] = (),
                    reason: str | None = None) -> str: ...
    async def invite(self, actor: Any, sender: str, target: str,
                     content: Mapping[str, Any], stripped_state: Sequence[dict]) -> str: ...
    async def knock(self, room_id: str, user_id: str, servers: Iterable[str] = (),
                    reason: str | None = None) -> str: ...


class MembershipService:
    def __init__(self, *, rooms, store, ratelimiter, notifier, server_name: str) -> None:
        self._rooms = rooms
        self._store = store
        self._ratelimiter = ratelimiter
        self._notifier = notifier
        self._server_name = server_name
        self._settings_copiers: list[SettingsCopier] = []
        self._remote: RemoteRooms | None = None
        self._stripped: Callable[..., Awaitable[list[dict]]] | None = None

    def set_remote(self, remote: RemoteRooms,
                   stripped_state: Callable[..., Awaitable[list[dict]]]) -> None:
        """Reach rooms on other servers through ``remote`` (set by the composition
        root once federation exists); ``stripped_state(room_id, members=[...])`` gives
        the invite_room_state sent with an invite of a remote user."""
        self._remote = remote
        self._stripped = stripped_state

    def add_settings_copier(self, copier: "SettingsCopier") -> None:
        """Have ``await copier(user_id, old_room, new_room)`` carry more of a local
        user's per-room settings over to an upgraded room (e.g. room push rules,
        sytest "local user has push rules copied to upgraded room"), next to the tags
        and ``m.direct`` entry copied here. A copier's failure is logged, never
        raised."""
        self._settings_copiers.append(copier)

    # -- the one write path ---------------------------------------------------------
    async def change(self, room_id: str, sender: str, target: str, membership: str, *,
                     reason: str | None = None, content: Mapping[str, Any] | None = None,
                     ratelimit: bool = True, sender_is_guest: bool = False) -> str:
        """Set ``target``'s membership of the room; returns the member event's ID.

        ``content`` adds keys to the event's content (e.g. ``is_direct``); ``reason``
        becomes ``content.reason``. Raises NotFound for an unknown room, Forbidden
        (403) when the auth rules refuse, InvalidParam for a malformed user ID.
        """
        if membership not in MEMBERSHIPS:
            raise InvalidParam(f"unknown membership {membership!r}")
        target_id = UserID.parse(target)
        if reason is not None and not isinstance(reason, str):
            raise BadJson("reason must be a string")
        remote_target = target_id.domain != self._server_name
        if membership == "invite" and remote_target and self._remote is None:
            raise UnknownError(f"cannot invite {target}: {FEDERATION_MISSING}")
        if membership == "leave" and sender == target and self._remote is not None \
                and not self._rooms.known(room_id):
            # rejecting an invite to (or retracting a knock on) a room held elsewhere
            if await self._store.streams.get_membership(target, room_id) is None:
                raise NotFound(f"Room {room_id} not found")
            return await self._remote.leave(room_id, target, reason=reason)
        actor = await self._rooms.get(room_id)
        if ratelimit:
            self._check_ratelimits(room_id, sender, target, membership)

        key = ("m.room.member", target)
        state = await actor.current_state([key, GUEST_ACCESS_KEY, CREATE_KEY,
                                           JOIN_RULES_KEY])
        if sender_is_guest and membership == "join":
            access = state.get(GUEST_ACCESS_KEY)
            if access is None or access.content.get("guest_access") != "can_join":
                raise GuestAccessForbidden("Guest access not allowed")

        new_content: dict[str, Any] = dict(content or {})
        new_content["membership"] = membership
        if reason is not None:
            new_content["reason"] = reason
        if membership == "join" and target == sender or membership == "invite":
            await self._add_profile(new_content, target_id)

        current = state.get(key)
        if membership == "join" and target == sender and "join_authorised_via_users_server" \
                not in new_content and (current is None
                                        or current.membership not in ("invite", "join",
                                                                      "ban")):
            authoriser = await self._restricted_join_authoriser(actor, state, target)
            if authoriser is not None:
                new_content["join_authorised_via_users_server"] = authoriser
        if current is not None and membership in _IDEMPOTENT \
                and dict(current.content) == new_content:
            return current.event_id
        if membership == "invite" and remote_target:
            assert self._remote is not None and self._stripped is not None
            return await self._remote.invite(
                actor, sender, target, new_content,
                await self._stripped(room_id, members=[sender]))
        event = await actor.create_event({"type": "m.room.member", "sender": sender,
                                          "state_key": target, "content": new_content})
        return event.event_id

    async def restricted_join_authoriser(self, actor, state, user_id: str) -> str | None:
        """See ``_restricted_join_authoriser``; for make_join of a remote user."""
        return await self._restricted_join_authoriser(actor, state, user_id)

    async def _restricted_join_authoriser(self, actor, state, user_id: str) -> str | None:
        """For a restricted room (v8+; spec "Restricted rooms"): a joined local member
        able to invite, vouching that ``user_id`` meets an ``allow`` condition (joined
        to one of the listed rooms). None when the room is not restricted; Forbidden
        when no condition is met."""
        version = actor.room_version
        rules = state.get(JOIN_RULES_KEY)
        rule = rules.content.get("join_rule") if rules is not None else None
        if not (rule == "restricted" and version.restricted_join_rule
                or rule == "knock_restricted" and version.knock_restricted_join_rule):
            return None
        allow = rules.content.get("allow")
        allowed_rooms = [c.get("room_id") for c in allow if isinstance(c, dict)
                         and c.get("type") == "m.room_membership"
                         and isinstance(c.get("room_id"), str)] \
            if isinstance(allow, list) else []
        for room_id in allowed_rooms:
            indexed = await self._store.streams.get_membership(user_id, room_id)
            if indexed is not None and indexed.membership == "join":
                break
        else:
            raise Forbidden("You do not belong to any of the rooms this room is "
                            "restricted to; you need an invite")
        levels = await actor.current_state([POWER_LEVELS_KEY, CREATE_KEY])
        for member in sorted(await actor.members("join")):
            if UserID.parse(member).domain == self._server_name and \
                    pl.user_power_level(member, levels) >= pl.invite_level(levels):
                return member
        raise Forbidden("No member of this server may invite you into the room")

    def _check_ratelimits(self, room_id: str, sender: str, target: str,
                          membership: str) -> None:
        if membership == "join" and sender == target:
            self._ratelimiter.check("rc_joins.local", sender)
        elif membership == "invite":
            self._ratelimiter.check("rc_invites.per_room", room_id)
            self._ratelimiter.check("rc_invites.per_user", target)

    async def _add_profile(self, content: dict[str, Any], user: UserID) -> None:
        if user.domain != self._server_name:
            return
        profile = await self._store.accounts.get_profile(user.to_string())
        if profile is None:
            return
        for key in ("displayname", "avatar_url"):
            value = getattr(profile, key)
            if value is not None and key not in content:
                content[key] = value

    # -- entry points with room resolution ------------------------------------------
    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A local room's ID from a room ID or alias (NotFound otherwise)."""
        if room_id_or_alias.startswith("#"):
            alias = RoomAlias.parse(room_id_or_alias)
            if alias.domain != self._server_name:
                raise NotFound(f"Room alias {room_id_or_alias} is on another server: "
                               f"{FEDERATION_MISSING}")
            info = await self._store.rooms.get_alias(alias.to_string())
            if info is None:
                raise NotFound(f"Room alias {room_id_or_alias} not found")
            return info.room_id
        room_id = parse_room_id(room_id_or_alias)
        if not self._rooms.known(room_id):
            server = room_id.split(":", 1)[1] if ":" in room_id else None
            if server is not None and server != self._server_name:
                raise NotFound(f"Room {room_id} is not known to this server and "
                               f"{FEDERATION_MISSING}")
            raise NotFound(f"Room {room_id} not found")
        return room_id

    async def join(self, room_id_or_alias: str, user_id: str, *, reason: str | None = None,
                   content: Mapping[str, Any] | None = None, is_guest: bool = False,
                   servers: Sequence[str] = ()) -> str:
        """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join: returns the room ID.

        ``content``: further keys of the member event (the request body's other
        fields, as Synapse keeps them: e.g. a per-room ``displayname``, which then
        wins over the profile's). A room we do not hold is joined over federation
        through ``servers`` (``server_name``/``via``), a remote alias's servers, the
        inviter's server and the room ID's server."""
        if self._remote is not None:
            room_id, found = await self._remote_room(room_id_or_alias)
            if room_id is not None:
                if is_guest:
                    raise GuestAccessForbidden("Guests may not join rooms on other servers")
                self._ratelimiter.check("rc_joins.local", user_id)
                new_content: dict[str, Any] = dict(content or {})
                new_content["membership"] = "join"
                if reason is not None:
                    new_content["reason"] = reason
                await self._add_profile(new_content, UserID.parse(user_id))
                await self._remote.join(room_id, user_id, [*servers, *found], new_content)
                return room_id
        room_id = await self.resolve_room(room_id_or_alias)
        await self.change(room_id, user_id, user_id, "join", reason=reason,
                          content=content, sender_is_guest=is_guest)
        return room_id

    async def _remote_room(self, room_id_or_alias: str) -> tuple[str | None, list[str]]:
        """(room ID, servers) if the room is held elsewhere and not here, else None."""
        assert self._remote is not None
        if room_id_or_alias.startswith("#"):
            alias = RoomAlias.parse(room_id_or_alias)
            if alias.domain == self._server_name:
                return None, []
            room_id, servers = await self._remote.resolve_alias(alias.to_string())
        else:
            room_id, servers = parse_room_id(room_id_or_alias), []
        return (None, []) if self._rooms.known(room_id) else (room_id, servers)

    async def knock(self, room_id_or_alias: str, user_id: str, *,
                    reason: str | None = None, servers: Sequence[str] = ()) -> str:
        """POST /knock/{roomIdOrAlias} (room versions 7+): returns the room ID. A room
        held elsewhere is knocked on over federation through ``servers``."""
        if self._remote is not None:
            room_id, found = await self._remote_room(room_id_or_alias)
            if room_id is not None:
                await self._remote.knock(room_id, user_id, [*servers, *found], reason)
                return room_id
        room_id = await self.resolve_room(room_id_or_alias)
        actor = await self._rooms.get(room_id)
        if not actor.room_version.knock_join_rule:
            raise MatrixError("You are not allowed to knock on this room: its room "
                              "version does not support knocking", errcode="M_FORBIDDEN",
                              status=403)
        await self.change(room_id, user_id, user_id, "knock", reason=reason)
        return room_id

    async def moderate(self, action: str, room_id: str, sender: str, target: str, *,
                       reason: str | None = None) -> str:
        """POST /rooms/{roomId}/kick, /ban, /unban; returns the member event's ID.

        A kick needs the target in the room (joined, invited or knocking) and an unban
        a banned target: otherwise both would be some other change (a kick would lift
        a ban, an unban would kick), so they are refused (403).
        """
        actor = await self._rooms.get(room_id)
        current = await actor.membership(UserID.parse(target).to_string())
        if action == "kick":
            if current not in ("join", "invite", "knock"):
                raise Forbidden(f"{target} is not in the room")
            membership = "leave"
        elif action == "unban":
            if current != "ban":
                raise Forbidden(f"{target} is not banned")
            membership = "leave"
        elif action == "ban":
            membership = "ban"
        else:
            raise ValueError(action)
        return await self.change(room_id, sender, target, membership, reason=reason,
                                 ratelimit=False)

    async def forget(self, room_id: str, user_id: str) -> None:
        """POST /rooms/{roomId}/forget: only after leaving (400 M_UNKNOWN if still in)."""
        membership = await self._store.streams.get_membership(user_id, room_id)
        if membership is None:
            if not self._rooms.known(room_id):
                raise NotFound(f"Room {room_id} not found")
            return  # nothing to forget
        if not await self._store.streams.forget(user_id, room_id):
            raise UnknownError(f"User {user_id} is in room {room_id} "
                               f"({membership.membership}): leave it before forgetting it")
        self._notifier.notify_user(user_id)

    # -- observers --------------------------------------------------------------------
    def on_event(self, event: PDU, _stream_pos: int) -> None:
        """Notifier observer: evict guests when guest access is turned off."""
        if event.type == GUEST_ACCESS_KEY[0] and event.state_key == "" \
                and event.content.get("guest_access") != "can_join":
            defer.ensureDeferred(self._evict_guests(event.room_id)).addErrback(
                lambda f: log.failure("evicting guests from {room}", f, room=event.room_id))

    async def _evict_guests(self, room_id: str) -> None:
        actor = await self._rooms.get(room_id)
        for user_id in await actor.members("join"):
            if UserID.parse(user_id).domain != self._server_name:
                continue
            info = await self._store.accounts.get_user(user_id)
            if info is not None and info.is_guest:
                await self.change(room_id, user_id, user_id, "leave", ratelimit=False)

    async def carry_over_settings(self, user_id: str, old_room: str, room_id: str) -> None:
        """Copy a local user's tags and m.direct entry from ``old_room`` to its
        replacement ``room_id`` (best effort: a failure is logged, never raised)."""
        if UserID.parse(user_id).domain != self._server_name:
            return
        try:
            data = self._store.account_data
            for tag, tag_content in (await data.get_tags_for_room(user_id, old_room)).items():
                await data.add_tag(user_id, room_id, tag, tag_content)
            direct = await data.get_account_data(user_id, "m.direct")
            if isinstance(direct, dict):
                changed = False
                for peer, rooms in direct.items():
                    if isinstance(rooms, list) and old_room in rooms and room_id not in rooms:
                        direct[peer] = rooms + [room_id]
                        changed = True
                if changed:
                    await data.set_account_data(user_id, "m.direct", direct)
        except Exception:
            log.failure("copying settings of {user} to upgraded room {room}",
                        user=user_id, room=room_id)
        for copier in self._settings_copiers:
            try:
                await copier(user_id, old_room, room_id)
            except Exception:
                log.failure("copying settings of {user} to upgraded room {room}",
                            user=user_id, room=room_id)
        self._notifier.notify_user(user_id)
