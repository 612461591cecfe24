"""The events that make a new room, from a ``/createRoom`` body (pure).

Spec: Client-Server API, "Creation" (POST /createRoom). The order is the spec's:
create, the creator's join, power levels (with the override merged), canonical alias,
the preset's join rules / history visibility / guest access, ``initial_state``, name,
topic. Invites are sent afterwards as ordinary membership changes.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from homeserver.errors import BadJson, InvalidParam
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.rules.owned_state import CALL_MEMBER_POWER

PRESETS = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared",
                     "guest_access": "can_join", "invitees_are_admins": False},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared",
                             "guest_access": "can_join", "invitees_are_admins": True},
    "public_chat": {"join_rule": "public", "history_visibility": "shared",
                    "guest_access": "forbidden", "invitees_are_admins": False},
}


def default_power_levels(room_version: RoomVersion, creator: str, preset: str,
                         invitees: list[str]) -> dict[str, Any]:
    """The preset's ``m.room.power_levels`` content before any override.

    v12 (MSC4289): creators are not listed (their power is unbounded) and the
    tombstone level sits above ``state_default``'s admins (150), so that by default
    only creators can upgrade the room and take over its creator role.
    """
    users: dict[str, int] = {}
    if not room_version.privileged_creators:
        users[creator] = 100
        if PRESETS[preset]["invitees_are_admins"]:
            users.update({u: 100 for u in invitees})
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if room_version.privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
            # every member may post their own MatrixRTC call membership (Element Web
            # sets the same when it creates a room; rules/owned_state.py keeps each
            # member's keys theirs)
            **CALL_MEMBER_POWER,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
        "notifications": {"room": 50},
    }


def topic_content(topic: str) -> dict[str, Any]:
    """``m.room.topic`` content: the plain text and its ``m.topic`` block (spec v1.15)."""
    return {"topic": topic, "m.topic": {"m.text": [{"body": topic, "mimetype": "text/plain"}]}}


def _state(event_type: str, sender: str, content: Mapping[str, Any],
           state_key: str = "") -> dict[str, Any]:
    return {"type": event_type, "state_key": state_key, "sender": sender,
            "content": dict(content)}


def initial_room_events(room_version: RoomVersion, creator: str, body: Mapping[str, Any],
                        *, alias: str | None = None,
                        creator_profile: Mapping[str, Any] | None = None) -> list[dict]:
    """The partial events (no room_id, prev_events, auth_events) that create the room."""
    visibility = body.get("visibility", "private")
    if not isinstance(visibility, str):
        raise BadJson("visibility must be a string")
    if visibility not in ("public", "private"):
        raise InvalidParam("visibility must be public or private")
    preset = body.get("preset") or ("public_chat" if visibility == "public" else "private_chat")
    if preset not in PRESETS:
        raise InvalidParam(f"unknown preset {preset!r}")
    invitees = body.get("invite", [])
    if not isinstance(invitees, list) or not all(isinstance(u, str) for u in invitees):
        raise BadJson("invite must be a list of user IDs")

    creation_content = body.get("creation_content")
    creation_content = {} if creation_content is None else creation_content
    if not isinstance(creation_content, dict):
        raise BadJson("creation_content must be an object")
    create_content = copy.deepcopy(creation_content)
    create_content["room_version"] = room_version.identifier
    if room_version.implicit_room_creator:
        create_content.pop("creator", None)
    else:
        create_content["creator"] = creator
    if room_version.privileged_creators:
        extra = list(create_content.get("additional_creators", []))
        if not isinstance(extra, list) or not all(isinstance(u, str) for u in extra):
            raise BadJson("additional_creators must be a list of user IDs")
        if PRESETS[preset]["invitees_are_admins"]:
            # MSC4289: in trusted private chats the invitees become creators too
            extra.extend(u for u in invitees if u not in extra and u != creator)
        if extra:
            create_content["additional_creators"] = extra
    else:
        create_content.pop("additional_creators", None)

    events = [_state("m.room.create", creator, create_content)]
    member = {"membership": "join"}
    for key in ("displayname", "avatar_url"):
        if creator_profile and creator_profile.get(key) is not None:
            member[key] = creator_profile[key]
    events.append(_state("m.room.member", creator, member, creator))

    power = default_power_levels(room_version, creator, preset, invitees)
    override = body.get("power_level_content_override")
    if override is not None:
        if not isinstance(override, dict):
            raise BadJson("power_level_content_override must be an object")
        power.update(copy.deepcopy(override))
    events.append(_state("m.room.power_levels", creator, power))

    if alias is not None:
        events.append(_state("m.room.canonical_alias", creator, {"alias": alias}))

    initial_state = body.get("initial_state", [])
    if not isinstance(initial_state, list):
        raise BadJson("initial_state must be a list")
    given: dict[tuple[str, str], dict] = {}
    for item in initial_state:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                or not isinstance(item.get("content", {}), dict) \
                or not isinstance(item.get("state_key", ""), str):
            raise BadJson("initial_state entries need type, state_key and content")
        if item["type"] in ("m.room.create", "m.room.member"):
            continue  # the spec gives these their own parameters
        overridden = {"m.room.name": "name", "m.room.topic": "topic"}.get(item["type"])
        if overridden and body.get(overridden) is not None \
                and item.get("state_key", "") == "":
            continue  # "name" and "topic" overwrite these in initial_state
        given[(item["type"], item.get("state_key", ""))] = item

    settings = PRESETS[preset]
    for event_type, key, value in (
            ("m.room.join_rules", "join_rule", settings["join_rule"]),
            ("m.room.history_visibility", "history_visibility", settings["history_visibility"]),
            ("m.room.guest_access", "guest_access", settings["guest_access"])):
        if (event_type, "") not in given:
            events.append(_state(event_type, creator, {key: value}))
    for (event_type, state_key), item in given.items():
        events.append(_state(event_type, creator, item.get("content", {}), state_key))

    name, topic = body.get("name"), body.get("topic")
    for field, value in (("name", name), ("topic", topic)):
        if value is not None and not isinstance(value, str):
            raise BadJson(f"{field} must be a string")
    if name is not None:
        events.append(_state("m.room.name", creator, {"name": name}))
    if topic is not None:
        events.append(_state("m.room.topic", creator, topic_content(topic)))
    return events
