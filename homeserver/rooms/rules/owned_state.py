"""MatrixRTC call memberships are per user and device: who may write whose.

Element Call (matrix-js-sdk's MatrixRTC membership manager) posts its membership as an
``org.matrix.msc3401.call.member`` state event keyed ``_@user:server_DEVICE``, or
``@user:server_DEVICE`` in the MSC3757/MSC3779 room versions ``org.matrix.msc3757.*``
(rooms we do not serve). In room versions 1-12 only a key that *starts* with "@" must
equal the sender (auth rule 9, rooms/rules/auth.py), so a leading "_" leaves the key
unowned: any member with the event's power level could overwrite another member's
call membership. Since new rooms here let every member post call memberships (power
level 0, as Element Web's room creation does; rooms/rules/creation.py), the client
API applies MSC3757's ownership to these types for local senders: a key naming a user
(``@u:s``, ``@u:s_X``, ``_@u:s_X``) may be written by that user, or by someone with
more power (a moderator clearing a stale membership). The auth rules, which every
server must agree on, are unchanged. Pure.

Spec: MSC3401 (call.member), MSC3757 (owned state keys), MSC3779, MSC4143 (m.rtc.member).
"""

from __future__ import annotations

from homeserver.errors import Forbidden
from homeserver.ids import InvalidId, UserID
from homeserver.rooms.rules.power_levels import StateMap, user_power_level

#: call membership types (legacy MSC3401, MSC4143 stable and unstable)
CALL_MEMBER_TYPES = frozenset({"org.matrix.msc3401.call.member", "m.rtc.member",
                               "org.matrix.msc4143.rtc.member"})
#: the power level new rooms give these types (everyone may join calls)
CALL_MEMBER_POWER = {event_type: 0 for event_type in sorted(CALL_MEMBER_TYPES)}


def state_key_owner(state_key: str) -> str | None:
    """The user a state key names (MSC3757: the user ID, optionally followed by "_" and
    a suffix; MSC3779's unowned-looking form with a leading "_" too), or None."""
    key = state_key[1:] if state_key.startswith("_@") else state_key
    if not key.startswith("@"):
        return None
    colon = key.find(":", 1)
    if colon < 0:
        return None
    underscore = key.find("_", colon + 1)
    candidate = key if underscore < 0 else key[:underscore]
    try:
        return UserID.parse(candidate).to_string()
    except InvalidId:
        return None


def check_call_member_key(event_type: str, state_key: str, sender: str,
                          state: StateMap) -> None:
    """Raise Forbidden when ``sender`` writes a call membership keyed to another user
    without outranking them (``state`` holds the create and power levels events)."""
    if event_type not in CALL_MEMBER_TYPES:
        return
    owner = state_key_owner(state_key)
    if owner is None or owner == sender:
        return
    if user_power_level(sender, state) > user_power_level(owner, state):
        return
    raise Forbidden(f"{sender} may not set the call membership of {owner}")
