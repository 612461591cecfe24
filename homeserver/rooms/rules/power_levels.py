"""Power levels read from a room's state, by the rules of its room version.

Pure: takes a state map ``(type, state_key) -> PDU`` and returns numbers. Used by the
authorization rules (rooms/rules/auth.py), by state resolution's power ordering, and by
the client API (e.g. "may this user send this event?"). Also holds auth rule 10, the
rules for changing the power levels (``check_power_levels_change``).

Spec: client-server API, ``m.room.power_levels`` (defaults); server-server API,
"Checks performed on receipt of a PDU" / Definitions (required power level, invite,
kick, ban and redact levels); room versions 1-9 "stringy" and 1-5 "floaty" power
levels; room version 12 / MSC4289 (room creators have infinite power).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from homeserver.errors import AuthError, BadJson
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.ids import InvalidId, UserID

#: a state map as the auth rules see it: (event type, state key) -> event
StateMap = Mapping[tuple[str, str], PDU]

#: a user's power: an int, or ``CREATOR_POWER_LEVEL`` for room v12 creators
PowerLevel = int | float

#: MSC4289: creators outrank every integer level, including 2**53-1. ``math.inf``
#: compares correctly with ints and is equal to itself, so two creators can never
#: act "above" each other (kick, ban, demote), exactly as the rules require.
CREATOR_POWER_LEVEL: float = math.inf

CREATE_KEY = ("m.room.create", "")
POWER_LEVELS_KEY = ("m.room.power_levels", "")

#: levels the spec gives when the power_levels event (or the key in it) is absent
DEFAULT_USERS_LEVEL = 0
DEFAULT_EVENTS_LEVEL = 0
DEFAULT_STATE_LEVEL = 50
DEFAULT_INVITE_LEVEL = 0
DEFAULT_KICK_LEVEL = 50
DEFAULT_BAN_LEVEL = 50
DEFAULT_REDACT_LEVEL = 50
DEFAULT_NOTIFICATION_LEVEL = 50
#: before v12, the creator's level when the room has no power_levels event
CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100

#: spec v1 "stringy" levels: optional whitespace, one sign, base-10 digits
_STRINGY_INT_RE = re.compile(r"^[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*$")


def parse_power_level(value: Any, room_version: RoomVersion | None) -> int | None:
    """The integer a power-level value stands for, or None if it is not valid.

    v10+ accept only JSON integers. Earlier versions also accept integer strings
    ("stringy", rooms v1-9) and floats, truncated ("floaty", rooms v1-5; later
    versions cannot carry floats since strict canonical JSON rejects them at the
    event-format check). Booleans are never levels, although Python's ``bool``
    is an ``int``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version is not None and room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str):
        return int(value.strip()) if _STRINGY_INT_RE.match(value) else None
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def room_version_of(state: StateMap) -> RoomVersion | None:
    """The room version of the events in ``state`` (None for an empty map)."""
    for key in (CREATE_KEY, POWER_LEVELS_KEY):
        event = state.get(key)
        if event is not None:
            return event.room_version
    for event in state.values():
        return event.room_version
    return None


def creators_of(create_event: PDU | None) -> frozenset[str]:
    """The room's creators according to its create event.

    v3-v10: ``content.creator``; v11: the create event's sender; v12 (MSC4289):
    the sender plus ``content.additional_creators`` (entries that are not strings
    are ignored here; the auth rules reject such create events).
    """
    if create_event is None:
        return frozenset()
    version = create_event.room_version
    if not version.implicit_room_creator:
        creator = create_event.content.get("creator")
        return frozenset([creator]) if isinstance(creator, str) else frozenset()
    creators = {create_event.sender}
    if version.privileged_creators:
        extra = create_event.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
    return frozenset(creators)


def room_creators(state: StateMap) -> frozenset[str]:
    """The creators of the room whose state is ``state`` (see ``creators_of``)."""
    return creators_of(state.get(CREATE_KEY))


def _content(state: StateMap) -> Mapping[str, Any] | None:
    event = state.get(POWER_LEVELS_KEY)
    if event is None:
        return None
    content = event.content
    return content if isinstance(content, Mapping) else {}


def _level(content: Mapping[str, Any] | None, key: str, default: int,
           version: RoomVersion | None) -> int:
    """A top-level level from the PL content; absent or unreadable -> the default.

    Unreadable values can only exist in rooms before v10 (later versions reject them
    in the auth rules); falling back to the spec default keeps reading total.
    """
    if content is None or key not in content:
        return default
    parsed = parse_power_level(content[key], version)
    return default if parsed is None else parsed


def user_power_level(user_id: str, state: StateMap) -> PowerLevel:
    """The power level of ``user_id`` in a room with this state.

    v12 creators: ``CREATOR_POWER_LEVEL`` always. Otherwise ``users[user_id]``, else
    ``users_default``, else 0; with no power_levels event, the creator has 100
    (before v12) and everyone else 0.
    """
    version = room_version_of(state)
    if version is not None and version.privileged_creators:
        if user_id in room_creators(state):
            return CREATOR_POWER_LEVEL
    content = _content(state)
    if content is None:
        if version is not None and not version.privileged_creators \
                and user_id in room_creators(state):
            return CREATOR_LEVEL_WITHOUT_POWER_LEVELS
        return DEFAULT_USERS_LEVEL
    users = content.get("users")
    if isinstance(users, Mapping) and user_id in users:
        parsed = parse_power_level(users[user_id], version)
        if parsed is not None:
            return parsed
    return _level(content, "users_default", DEFAULT_USERS_LEVEL, version)


def required_power_for_event(event_type: str, is_state: bool, state: StateMap) -> int:
    """The level needed to send an event of ``event_type`` (spec: required power level).

    ``events[event_type]`` if set, else ``state_default`` (50) for state events or
    ``events_default`` (0) for others. The same defaults apply when the room has no
    power_levels event (m.room.power_levels schema).
    """
    version = room_version_of(state)
    content = _content(state)
    if content is not None:
        events = content.get("events")
        if isinstance(events, Mapping) and event_type in events:
            parsed = parse_power_level(events[event_type], version)
            if parsed is not None:
                return parsed
    if is_state:
        return _level(content, "state_default", DEFAULT_STATE_LEVEL, version)
    return _level(content, "events_default", DEFAULT_EVENTS_LEVEL, version)


def can_send(user_id: str, event_type: str, is_state: bool, state: StateMap) -> bool:
    """True if ``user_id``'s level reaches the required level for ``event_type``.

    Only the power-level part of the auth rules: membership and the special rules
    for member/power_levels events are checked by rooms.rules.auth.
    """
    return user_power_level(user_id, state) >= required_power_for_event(
        event_type, is_state, state)


def invite_level(state: StateMap) -> int:
    """The *invite level* (default 0)."""
    return _level(_content(state), "invite", DEFAULT_INVITE_LEVEL, room_version_of(state))


def kick_level(state: StateMap) -> int:
    """The *kick level* (default 50)."""
    return _level(_content(state), "kick", DEFAULT_KICK_LEVEL, room_version_of(state))


def ban_level(state: StateMap) -> int:
    """The *ban level* (default 50)."""
    return _level(_content(state), "ban", DEFAULT_BAN_LEVEL, room_version_of(state))


def redact_level(state: StateMap) -> int:
    """The *redact level* (default 50): needed to redact *other* users' events."""
    return _level(_content(state), "redact", DEFAULT_REDACT_LEVEL, room_version_of(state))


def notification_level(state: StateMap, key: str = "room") -> int:
    """The level needed to trigger notification ``key`` (``@room``: "room", default 50)."""
    content = _content(state)
    if content is not None:
        notifications = content.get("notifications")
        if isinstance(notifications, Mapping) and key in notifications:
            parsed = parse_power_level(notifications[key], room_version_of(state))
            if parsed is not None:
                return parsed
    return DEFAULT_NOTIFICATION_LEVEL


def can_redact(user_id: str, original_sender: str, state: StateMap) -> bool:
    """Whether ``user_id`` may redact an event sent by ``original_sender`` (client side).

    Anyone allowed to send ``m.room.redaction`` may redact their own events; redacting
    another user's event additionally needs the *redact level*. (Federation's "same
    server" allowance is rooms.rules.auth.redaction_applies.)
    """
    if not can_send(user_id, "m.room.redaction", False, state):
        return False
    return user_id == original_sender or user_power_level(user_id, state) >= redact_level(state)


# -- auth rule 10: changing the power levels ------------------------------------------

#: power_levels keys holding a single level (rules 10.1 and 10.6)
LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact",
              "kick", "invite")


#: canonical JSON's integer range, which a level we write must stay within
_MAX_LEVEL = 2 ** 53 - 1


def check_new_power_levels(content: Mapping[str, Any]) -> None:
    """Raise BadJson (400 M_BAD_JSON) unless every level in power levels content we
    are about to create is an integer in canonical JSON's range.

    Applies to events made for local users in every room version, as Synapse's
    ``POWER_LEVELS_SCHEMA`` does: the "stringy" levels older room versions accept
    from other servers are not written by us (v10+ would reject them as events).
    """
    def is_level(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) \
            and -_MAX_LEVEL <= value <= _MAX_LEVEL

    for key in LEVEL_KEYS:
        if key in content and not is_level(content[key]):
            raise BadJson(f"power_levels {key} must be an integer")
    for key in ("events", "notifications", "users"):
        if key not in content:
            continue
        value = content[key]
        if not isinstance(value, Mapping):
            raise BadJson(f"power_levels {key} must be an object")
        for name, level in value.items():
            if not is_level(level):
                raise BadJson(f"power_levels {key}[{name!r}] must be an integer")


def _strict_levels(value: Any, version: RoomVersion, what: str) -> dict[str, int]:
    """An ``events``/``notifications``/``users`` object as ints (absent -> {})."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AuthError(f"power_levels {what} is not an object")
    parsed = {}
    for key, level in value.items():
        number = parse_power_level(level, version)
        if number is None:
            raise AuthError(f"power_levels {what}[{key!r}] is not an integer")
        parsed[key] = number
    return parsed


def _lenient_levels(value: Any, version: RoomVersion) -> dict[str, int]:
    """The previous event's map; entries that cannot be read count as absent."""
    if not isinstance(value, Mapping):
        return {}
    parsed = {k: parse_power_level(v, version) for k, v in value.items()}
    return {k: v for k, v in parsed.items() if v is not None}


def _check_entry(what: str, before: int | None, after: int | None,
                 sender_level: PowerLevel) -> None:
    """Rules 10.6-10.8: a changed level must be within reach before and after."""
    if before == after:
        return
    if before is not None and before > sender_level:
        raise AuthError(f"cannot change {what} from {before}: above your level")
    if after is not None and after > sender_level:
        raise AuthError(f"cannot set {what} to {after}: above your level")


def check_power_levels_change(room_version: RoomVersion, sender: str,
                              new: Mapping[str, Any], state: StateMap,
                              sender_level: PowerLevel | None = None) -> None:
    """Auth rule 10 (v3-v5: 10, v6-v11: 9): may ``sender`` set these power levels?

    ``state`` holds the create event and the current power_levels event (if any).
    Raises ``AuthError``. Values that are no integer at all are refused in every
    room version (the spec validates only ``users`` before v10, but no level could
    be read from them; Synapse fails such events too).
    """
    if sender_level is None:
        sender_level = user_power_level(sender, state)
    # 10.1: single levels (v10+: JSON integers only; before: also integer strings)
    new_levels: dict[str, int] = {}
    for key in LEVEL_KEYS:
        if key in new:
            number = parse_power_level(new[key], room_version)
            if number is None:
                raise AuthError(f"power_levels {key} is not an integer")
            new_levels[key] = number
    # 10.2, 10.3: the maps; notifications are compared only from v6
    maps = ["events", "notifications"] if room_version.limit_notifications_power_levels \
        else ["events"]
    new_maps = {what: _strict_levels(new.get(what), room_version, what) for what in maps}
    new_users = _strict_levels(new.get("users"), room_version, "users")
    for user_id in new_users:
        try:
            UserID.parse(user_id)
        except InvalidId:
            raise AuthError(f"power_levels users has an invalid user ID {user_id!r}") from None
    # 10.4 (v12, MSC4289): creators' power is not the power_levels event's to give
    if room_version.privileged_creators:
        listed = room_creators(state) & new_users.keys()
        if listed:
            raise AuthError(f"room creators may not be listed in users: {sorted(listed)}")

    old_event = state.get(POWER_LEVELS_KEY)
    if old_event is None:                                               # 10.5
        return
    old = old_event.content

    for key in LEVEL_KEYS:                                              # 10.6
        before = parse_power_level(old[key], room_version) if key in old else None
        _check_entry(key, before, new_levels.get(key), sender_level)
    for what in maps:                                                   # 10.7, 10.8
        before_map, after_map = _lenient_levels(old.get(what), room_version), new_maps[what]
        for key in before_map.keys() | after_map.keys():
            _check_entry(f"{what}[{key!r}]", before_map.get(key), after_map.get(key),
                         sender_level)
    # 10.9, 10.10: you may lower yourself, but not peers or those above you
    before_users = _lenient_levels(old.get("users"), room_version)
    for user_id in before_users.keys() | new_users.keys():
        before, after = before_users.get(user_id), new_users.get(user_id)
        if before == after:
            continue
        if before is not None and user_id != sender and before >= sender_level:
            raise AuthError(f"cannot change the level of {user_id}: not below yours")
        if after is not None and after > sender_level:
            raise AuthError(f"cannot give {user_id} level {after}: above your level")
