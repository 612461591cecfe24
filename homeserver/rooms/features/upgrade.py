"""Room upgrades: ``POST /rooms/{roomId}/upgrade`` (spec: Client-Server API, "Room
Upgrades", server behaviour; MSC4289 for room version 12).

The steps, in the spec's order:

1. the upgrader must be joined and able to send ``m.room.tombstone``;
2. a new room whose create event has ``predecessor`` (``room_id``, and ``event_id``
   = the old room's last event, which v12 may omit and we do), the old ``type`` and
   ``m.federate``, and for v12 the requested ``additional_creators``. Before v12 the
   new room's ID is chosen first and the tombstone (step 5) sent before the room is
   made, so that ``event_id`` names it, as with Synapse;
3. the transferable state is copied (server ACL, encryption, name, avatar, topic,
   guest access, history visibility, join rules, power levels). Power levels keep
   every user's level, except that v12 creators may not be listed (they are removed)
   and the old room's v12 creators who are not creators of the new room get the
   highest level the power levels name (at least 100: they could do everything). Before v12 the upgrader is temporarily given the highest level in the
   copied power levels so they can send the copied state, then the copy is restored.
   A v12 room's tombstone level stays above ``state_default`` (MSC4289);
4. bans are copied;
5. the old room gets an ``m.room.tombstone`` pointing at the new one;
6. local aliases move to the new room, with the canonical alias event;
7. where the upgrader may, the old room's ``events_default`` and ``invite`` levels
   are raised to ``max(50, users_default + 1)`` (as the spec suggests).

A published old room is unpublished and its replacement published. Every joined local
member's tags, ``m.direct`` entry and room push rules are carried over at once (as
Synapse does), whether or not they join the replacement.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.errors import (
    BadJson, Forbidden, InvalidParam, UnsupportedRoomVersionError)
from homeserver.events.room_versions import RoomVersion, UnsupportedRoomVersion, \
    get_room_version
from homeserver.ids import UserID
from homeserver.rooms.rules import power_levels as pl
from homeserver.rooms.rules.creation import initial_room_events
from homeserver.rooms.rules.power_levels import CREATE_KEY, POWER_LEVELS_KEY

#: state copied into the replacement room (spec: "recommended state events")
TRANSFERRED_TYPES = ("m.room.server_acl", "m.room.encryption", "m.room.name",
                     "m.room.avatar", "m.room.topic", "m.room.guest_access",
                     "m.room.history_visibility", "m.room.join_rules")
_PRESET_TYPES = ("m.room.join_rules", "m.room.history_visibility", "m.room.guest_access")
_LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "kick",
               "redact", "invite")
_LEVEL_MAPS = ("users", "events", "notifications")
ADMIN_LEVEL = 100
V12_TOMBSTONE_LEVEL = 150


def _ints(content: Mapping[str, Any], old: RoomVersion) -> dict[str, Any]:
    """Power levels content with every level an int (v10+ refuse strings/floats)."""
    out = copy.deepcopy(dict(content))
    for key in _LEVEL_KEYS:
        if key in out:
            value = pl.parse_power_level(out[key], old)
            if value is None:
                out.pop(key)
            else:
                out[key] = value
    for key in _LEVEL_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in ((k, pl.parse_power_level(v, old))
                                          for k, v in out[key].items()) if v is not None}
        else:
            out.pop(key, None)
    return out


def new_power_levels(old_state: Mapping, old: RoomVersion, new: RoomVersion,
                     new_creators: frozenset[str]) -> dict[str, Any]:
    """The replacement room's power levels content (pure; see the module docstring)."""
    event = old_state.get(POWER_LEVELS_KEY)
    content = _ints(event.content if event is not None else {}, old)
    users: dict[str, int] = dict(content.get("users", {}))
    old_creators = pl.room_creators(old_state)
    if old.privileged_creators or event is None:
        # they had unbounded power (v12), or 100 from having no power levels at all:
        # they keep the power to do everything the levels name (a v12 room's
        # tombstone level, 150, included, or they could never upgrade again)
        top = _highest_level(content)
        for creator in old_creators:
            if creator not in new_creators:
                users[creator] = max(users.get(creator, 0), top)
    if new.privileged_creators:
        for creator in new_creators:
            users.pop(creator, None)
        events = dict(content.get("events", {}))
        state_default = content.get("state_default", pl.DEFAULT_STATE_LEVEL)
        if events.get("m.room.tombstone", state_default) <= state_default:
            events["m.room.tombstone"] = max(V12_TOMBSTONE_LEVEL, state_default + 1)
        content["events"] = events
    content["users"] = users
    return content


def _highest_level(content: Mapping[str, Any]) -> int:
    """The highest level power levels content (ints only) names, at least 100."""
    levels = [content.get(k, 0) for k in _LEVEL_KEYS] + \
        list(content.get("events", {}).values()) + [ADMIN_LEVEL]
    return max(levels)


def boosted(content: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    """``content`` with ``user_id`` raised to the highest level it names (or 100)."""
    needed = _highest_level(content)
    users = dict(content.get("users", {}))
    if users.get(user_id, content.get("users_default", 0)) >= needed:
        return dict(content)
    users[user_id] = needed
    return {**content, "users": users}


class RoomUpgrader:
    def __init__(self, *, rooms, store, server_name: str, membership, now_ms) -> None:
        self._rooms = rooms
        self._store = store
        self._server_name = server_name
        self._membership = membership

    async def upgrade(self, room_id: str, user_id: str, new_version: Any,
                      additional_creators: Sequence[str] | None = None) -> str:
        """Upgrade the room; returns the replacement room's ID."""
        if not isinstance(new_version, str):
            raise BadJson("new_version must be a string")
        try:
            version = get_room_version(new_version)
        except UnsupportedRoomVersion:
            raise UnsupportedRoomVersionError(
                "This server does not support that room version") from None
        extra = self._additional_creators(additional_creators, user_id)
        old_actor = await self._rooms.get(room_id)
        state = await old_actor.current_state()
        member = state.get(("m.room.member", user_id))
        if member is None or member.membership != "join" \
                or not pl.can_send(user_id, "m.room.tombstone", True, state):
            raise Forbidden("You cannot upgrade this room")
        old_version = old_actor.room_version
        new_creators = frozenset({user_id, *extra}) if version.privileged_creators \
            else frozenset()

        creation_content: dict[str, Any] = {"predecessor": {"room_id": room_id}}
        old_create = state[CREATE_KEY]
        for key in ("type", "m.federate"):
            if key in old_create.content:
                creation_content[key] = old_create.content[key]
        if version.privileged_creators and extra:
            creation_content["additional_creators"] = list(extra)

        final_pl = new_power_levels(state, old_version, version, new_creators)
        initial_pl = final_pl if version.privileged_creators else boosted(final_pl, user_id)
        body = {"preset": "private_chat", "creation_content": creation_content,
                "power_level_content_override": initial_pl,
                "initial_state": [{"type": t, "state_key": "",
                                   "content": dict(state[(t, "")].content)}
                                  for t in TRANSFERRED_TYPES if (t, "") in state]}
        profile = await self._store.accounts.get_profile(user_id)

        def partials() -> list[dict]:
            return [p for p in initial_room_events(
                        version, user_id, body,
                        creator_profile=None if profile is None else {
                            "displayname": profile.displayname,
                            "avatar_url": profile.avatar_url})
                    if not (p["type"] in _PRESET_TYPES and (p["type"], "") not in state)]

        for partial in partials():
            # a body the new room would refuse fails before anything is written: the
            # tombstone may go first. Content of rooms v1-v5 may hold floats or big
            # integers that later versions' canonical JSON refuses.
            encode_canonical_json(partial["content"], strict=version.strict_canonical_json)
        new_room_id = None
        if not version.room_id_from_create_event:
            # The new room's ID can be chosen first, so the tombstone goes first and
            # the predecessor names it: the old room's last event (as Synapse does).
            new_room_id = self._rooms.new_room_id()
            tombstone = await self._send_tombstone(old_actor, user_id, new_room_id)
            creation_content["predecessor"]["event_id"] = tombstone
        new_room_id, _ = await self._rooms.create_room(user_id, version.identifier,
                                                       partials(), room_id=new_room_id)
        await self._copy_bans(state, new_room_id, user_id)
        if initial_pl != final_pl:
            new_actor = await self._rooms.get(new_room_id)
            await new_actor.create_event({"type": "m.room.power_levels", "sender": user_id,
                                          "state_key": "", "content": final_pl})
        if version.room_id_from_create_event:
            await self._send_tombstone(old_actor, user_id, new_room_id)

        await self._move_aliases(room_id, new_room_id, user_id, state)
        info = await self._store.rooms.get_room(room_id)
        if info is not None and info.is_public:
            await self._store.rooms.set_room_public(new_room_id, True)
            await self._store.rooms.set_room_public(room_id, False)
        await self._restrict_old_room(old_actor, user_id)
        # every local member's tags, m.direct entry and room push rules follow the
        # room now, whether or not they join it yet (as Synapse's
        # transfer_room_state_on_room_upgrade)
        for member_id in self._local_members(state, user_id):
            await self._membership.carry_over_settings(member_id, room_id, new_room_id)
        return new_room_id

    def _local_members(self, state: Mapping[Any, Any], upgrader: str) -> list[str]:
        """The old room's joined local users, the upgrader first."""
        return sorted((key[1] for key, event in state.items()
                       if key[0] == "m.room.member" and event.membership == "join"
                       and UserID.parse(key[1]).domain == self._server_name),
                      key=lambda u: (u != upgrader, u))

    @staticmethod
    async def _send_tombstone(old_actor, user_id: str, new_room_id: str) -> str:
        event = await old_actor.create_event({
            "type": "m.room.tombstone", "sender": user_id, "state_key": "",
            "content": {"body": "This room has been replaced",
                        "replacement_room": new_room_id}})
        return event.event_id

    async def _copy_bans(self, state: Mapping, new_room_id: str, user_id: str) -> None:
        """Ban in the new room whoever is banned in the old one (as Synapse; sytest
        "/upgrade copies ban events to the new room"), with the ban's content."""
        for (event_type, target), event in sorted(state.items()):
            if event_type != "m.room.member" or event.membership != "ban":
                continue
            extra = {k: v for k, v in event.content.items()
                     if k not in ("membership", "reason")}
            reason = event.content.get("reason")
            try:
                await self._membership.change(
                    new_room_id, user_id, target, "ban", ratelimit=False, content=extra,
                    reason=reason if isinstance(reason, str) else None)
            except Forbidden:
                pass  # the upgrader cannot ban there: the new room starts without it

    def _additional_creators(self, value: Any, user_id: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise BadJson("additional_creators must be a list of user IDs")
        for user in value:
            UserID.parse(user)  # M_INVALID_PARAM if malformed
        if len(value) > 50:
            raise InvalidParam("too many additional_creators")
        return [u for u in dict.fromkeys(value) if u != user_id]

    async def _move_aliases(self, old_room: str, new_room: str, user_id: str,
                            state: Mapping) -> None:
        rooms = self._store.rooms
        for alias in await rooms.get_aliases_for_room(old_room):
            info = await rooms.get_alias(alias)
            if info is None or info.room_id != old_room:
                continue
            await rooms.delete_alias(alias)
            await rooms.create_alias(alias, new_room, info.servers, info.creator)
        canonical = state.get(("m.room.canonical_alias", ""))
        if canonical is None or not canonical.content:
            return
        new_actor = await self._rooms.get(new_room)
        await new_actor.create_event({"type": "m.room.canonical_alias", "sender": user_id,
                                      "state_key": "", "content": dict(canonical.content)})
        old_actor = await self._rooms.get(old_room)
        try:
            await old_actor.create_event({"type": "m.room.canonical_alias",
                                          "sender": user_id, "state_key": "",
                                          "content": {}})
        except Forbidden:
            pass  # the aliases moved anyway; the old event merely goes stale

    async def _restrict_old_room(self, actor, user_id: str) -> None:
        state = await actor.current_state([POWER_LEVELS_KEY, CREATE_KEY])
        event = state.get(POWER_LEVELS_KEY)
        content = _ints(event.content if event is not None else {}, actor.room_version)
        restricted = max(50, content.get("users_default", 0) + 1)
        changed = False
        for key in ("events_default", "invite"):
            if content.get(key, 0) < restricted:
                content[key] = restricted
                changed = True
        if not changed:
            return
        try:
            await actor.create_event({"type": "m.room.power_levels", "sender": user_id,
                                      "state_key": "", "content": content})
        except Forbidden:
            pass  # "if possible" (spec): the upgrader may lack the power
