"""History visibility applied to a room: which of its events a user may see, and
whether they may read the room at all (spec: Client-Server API, "Room History
Visibility", server behaviour).

The rules themselves are pure, in :mod:`homeserver.rooms.rules.visibility`;
:class:`HistoryVisibility` reads the state at each event from the room's actor and
judges it by them.
"""

from __future__ import annotations

from typing import Collection, Sequence

from homeserver.errors import Forbidden, NotFound
from homeserver.events.pdu import PDU
from homeserver.events.redaction import pruned_event
from homeserver.rooms.actor.actor import RoomActor
from homeserver.rooms.rules.visibility import (
    HISTORY_VISIBILITY_KEY, WORLD_READABLE, Access, Viewer, event_visible,
    history_visibility, membership_at, membership_in, needs_state_after, position)

#: walking back through a user's membership history stops after this many events
_MAX_MEMBERSHIP_STEPS = 100


class HistoryVisibility:
    """Applies the rules to events of one room, reading state from its actor."""

    def __init__(self, memberships, erased_users=None) -> None:
        """``memberships``: the memberships index (``store.streams``), for ``forgotten``;
        ``erased_users``: ``store.erased_users`` (None: nobody is erased)."""
        self._memberships = memberships
        self._erased_users = erased_users

    async def viewer(self, actor: RoomActor, user_id: str) -> Viewer:
        key = ("m.room.member", user_id)
        current = (await actor.current_state([key])).get(key)
        membership = current.membership if current is not None else None
        last_join = None
        event, steps = current, 0
        while event is not None and steps < _MAX_MEMBERSHIP_STEPS:
            if event.membership == "join":
                last_join = position(event)
                break
            try:
                event = (await actor.state_at(event.event_id, types=[key])).get(key)
            except NotFound:
                break
            steps += 1
        forgotten = False
        if membership in ("leave", "ban"):
            indexed = await self._memberships.get_membership(user_id, actor.room_id)
            forgotten = bool(indexed is not None and indexed.forgotten)
        return Viewer(user_id, membership, last_join, forgotten)

    @staticmethod
    async def _state(actor: RoomActor, user_id: str, event: PDU, after: bool,
                     states: dict[int | None, dict]) -> dict:
        """The visibility and the viewer's membership before (after) ``event``;
        ``states`` caches them by state group."""
        group = await actor.state_group_at(event.event_id, after=after)
        if group not in states:
            states[group] = await actor.state_of_group(
                group, [HISTORY_VISIBILITY_KEY, ("m.room.member", user_id)])
        return states[group]

    async def is_visible(self, actor: RoomActor, viewer: Viewer, event: PDU,
                         states: dict[int | None, dict] | None = None,
                         memberships: dict[str, str] | None = None) -> bool:
        """``states``: group → the state this needs of it, shared by calls for one
        viewer (consecutive messages share their state group: read it once).
        ``memberships``, if given, gets the viewer's membership at the event (see
        :func:`membership_at`), from the state read anyway."""
        user_id = viewer.user_id
        states = {} if states is None else states

        async def state(after: bool) -> dict:
            return await self._state(actor, user_id, event, after, states)

        try:
            if event.type == "m.room.create" and event.state_key == "":
                before = {}  # nothing precedes the create event
            else:
                before = await state(after=False)
            after = await state(after=True) if needs_state_after(event, user_id) else None
        except NotFound:
            return False  # an outlier: no state, never shown
        if memberships is not None:
            memberships[event.event_id] = membership_at(event, user_id, before)
        return event_visible(event, user_id, before, after, viewer.joined_after(event),
                             forgotten=viewer.forgotten)

    async def memberships_at(self, actor: RoomActor, user_id: str, events: Sequence[PDU],
                             states: dict[int | None, dict] | None = None
                             ) -> dict[str, str]:
        """event ID → ``user_id``'s membership at it (``unsigned.membership``), for
        events of one room; an event without known state (an outlier) is left out."""
        states = {} if states is None else states
        out: dict[str, str] = {}
        for event in events:
            if event.type == "m.room.create" and event.state_key == "" or \
                    event.type == "m.room.member" and event.state_key == user_id:
                before: dict = {}  # nothing before the create; own event: itself
            else:
                try:
                    before = await self._state(actor, user_id, event, False, states)
                except NotFound:
                    continue
            out[event.event_id] = membership_at(event, user_id, before)
        return out

    async def filter_events(self, actor: RoomActor, user_id: str, events: Sequence[PDU],
                            viewer: Viewer | None = None, *,
                            always_include: Collection[str] = (),
                            memberships: dict[str, str] | None = None) -> list[PDU]:
        """The events of ``events`` (one room) that ``user_id`` may see, in order;
        ``always_include``: event IDs kept whatever the rules say. ``memberships``:
        see :meth:`is_visible` (events kept by ``always_include`` are not judged)."""
        if not events:
            return []
        viewer = viewer or await self.viewer(actor, user_id)
        states: dict[int | None, dict] = {}
        visible = [e for e in events if e.event_id in always_include
                   or await self.is_visible(actor, viewer, e, states, memberships)]
        return await self.as_seen(actor, user_id, visible, states)

    async def as_seen(self, actor: RoomActor, user_id: str, events: Sequence[PDU],
                      states: dict[int | None, dict] | None = None) -> list[PDU]:
        """``events`` (visible to ``user_id``) as the user gets them: those sent by
        an erased user are pruned for a viewer who was not joined when they were
        sent (spec ``/account/deactivate`` ``erase``; Synapse does the same, and
        sytest "Only original members of the room can see messages from erased
        users" checks it)."""
        if self._erased_users is None or not events:
            return list(events)
        erased = await self._erased_users.erased_among({e.sender for e in events})
        if not erased:
            return list(events)
        states = {} if states is None else states
        seen = []
        for event in events:
            if event.sender in erased and not await self._joined_at(actor, user_id, event,
                                                                      states):
                event = pruned_event(event)
            seen.append(event)
        return seen

    async def _joined_at(self, actor: RoomActor, user_id: str, event: PDU,
                         states: dict[int | None, dict]) -> bool:
        try:
            before = await self._state(actor, user_id, event, False, states)
        except NotFound:
            return False
        return membership_in(before, user_id) == "join"

    @staticmethod
    async def current_state_among(actor: RoomActor, events: Sequence[PDU]
                                  ) -> frozenset[str]:
        """The IDs of those ``events`` that are part of the room's current state.

        A member who joins sees the room's current state anyway (the ``state`` of
        its sync), so a /sync timeline shows such events even where the history
        rules hide the time they were sent in: a client then learns, say, who joined
        while it was away in order (as Synapse; sytest "Current state appears in
        timeline in private history").
        """
        keys = list({e.state_pair for e in events if e.is_state()})
        if not keys:
            return frozenset()
        current = await actor.current_state_ids(keys)
        return frozenset(current.values())

    async def access(self, actor: RoomActor, user_id: str) -> Access:
        """May ``user_id`` read this room at all? Raises Forbidden (403) if not.

        Joined members read it now; members who left or were banned read it as it was
        when they left (unless they forgot it); anyone may read a world-readable room.
        """
        key = ("m.room.member", user_id)
        current = (await actor.current_state([key, HISTORY_VISIBILITY_KEY]))
        member = current.get(key)
        membership = member.membership if member is not None else None
        world_readable = history_visibility(current) == WORLD_READABLE
        if membership == "join":
            return Access("join", world_readable=world_readable)
        if membership in ("leave", "ban"):
            indexed = await self._memberships.get_membership(user_id, actor.room_id)
            if not (indexed is not None and indexed.forgotten):
                return Access(membership, member, world_readable)
        if world_readable:
            return Access(membership, world_readable=True)
        raise Forbidden(f"User {user_id} is not in room {actor.room_id}")

