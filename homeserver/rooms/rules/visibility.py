"""History visibility: may user X see event E? (spec: Client-Server API, "Room History
Visibility", server behaviour).

The rules, judged against the room's state *at the event*:

1. ``history_visibility`` ``world_readable``: allow.
2. the user's membership was ``join``: allow.
3. ``shared``, and the user joined the room at any point after the event: allow.
4. the user's membership was ``invite`` and the visibility ``invited``: allow.
5. otherwise deny.

``m.room.history_visibility`` events are visible if the rules allow them with the
visibility before *or* after the event; the user's own ``m.room.member`` events if they
allow them with the membership before *or* after it. A missing or unknown visibility
counts as ``shared``. A user who has *forgotten* the room sees only world-readable
history (spec: ``/forget``: "a user will no longer be able to retrieve history").

Pure: states in, answers out. ``HistoryVisibility``
(:mod:`homeserver.rooms.features.visibility`) applies these rules to a room, reading
the state at each event from the room's actor.
"""

from __future__ import annotations

import dataclasses

from homeserver.events.pdu import PDU
from homeserver.rooms.rules.power_levels import StateMap

HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")
WORLD_READABLE, SHARED, INVITED, JOINED = "world_readable", "shared", "invited", "joined"
_KNOWN = frozenset({WORLD_READABLE, SHARED, INVITED, JOINED})


def history_visibility(state: StateMap) -> str:
    """The visibility set in ``state`` (``shared`` if absent or not understood)."""
    event = state.get(HISTORY_VISIBILITY_KEY)
    value = event.content.get("history_visibility") if event is not None else None
    return value if value in _KNOWN else SHARED


def membership_in(state: StateMap, user_id: str) -> str | None:
    event = state.get(("m.room.member", user_id))
    value = event.content.get("membership") if event is not None else None
    return value if isinstance(value, str) else None


def membership_at(event: PDU, user_id: str, state_before: StateMap) -> str:
    """The user's membership at ``event``, for ``unsigned.membership`` (spec:
    "UnsignedData", MSC4115): the one their own member event sets, else the one in
    the state before the event (which no other event changes); ``leave`` if none."""
    if event.type == "m.room.member" and event.state_key == user_id:
        value = event.content.get("membership")
    else:
        value = membership_in(state_before, user_id)
    return value if isinstance(value, str) else "leave"


def allowed(visibility: str, membership: str | None, joined_later: bool) -> bool:
    """Rules 1-5 for one point of the room's history."""
    if visibility == WORLD_READABLE:
        return True
    if membership == "join":
        return True
    if visibility == SHARED and joined_later:
        return True
    return membership == "invite" and visibility == INVITED


def needs_state_after(event: PDU, user_id: str) -> bool:
    """Whether ``event`` is one the rules also judge by the state after it."""
    return event.type == HISTORY_VISIBILITY_KEY[0] and event.state_key == "" or \
        event.type == "m.room.member" and event.state_key == user_id


def event_visible(event: PDU, user_id: str, state_before: StateMap,
                  state_after: StateMap | None, joined_later: bool, *,
                  forgotten: bool = False) -> bool:
    """May ``user_id`` see ``event``, given the state before (and after) it?"""
    def judge(state: StateMap) -> bool:
        visibility = history_visibility(state)
        if forgotten:
            return visibility == WORLD_READABLE
        return allowed(visibility, membership_in(state, user_id), joined_later)

    if judge(state_before):
        return True
    return state_after is not None and needs_state_after(event, user_id) \
        and judge(state_after)


def position(event: PDU) -> tuple[int, int]:
    """The event's place in the room's topological order (depth, arrival seq)."""
    return (event.depth, event.internal_metadata.get("seq", 0))


@dataclasses.dataclass(frozen=True)
class Viewer:
    """What the rules need to know about a user once per request."""

    user_id: str
    #: current membership (None: never had one)
    membership: str | None
    #: (depth, seq) of the user's latest join; None if they never joined. A user
    #: who is joined now "joins after" every event.
    last_join: tuple[int, int] | None
    forgotten: bool = False

    def joined_after(self, event: PDU) -> bool:
        if self.membership == "join":
            return True
        return self.last_join is not None and self.last_join > position(event)


@dataclasses.dataclass(frozen=True)
class Access:
    """How a user may read a room (Synapse's "in room or world readable")."""

    membership: str | None
    #: for a user who left or was banned: their membership event (reads stop there)
    left_event: PDU | None = None
    #: the room's current history visibility is world_readable
    world_readable: bool = False

    @property
    def is_joined(self) -> bool:
        return self.membership == "join"
