"""The read endpoints of the Server-Server API, over a room's actor.

Spec: Server-Server API, "GET /event/{eventId}", "GET /state/{roomId}",
"GET /state_ids/{roomId}", "GET /backfill/{roomId}", "GET /event_auth/{roomId}/{eventId}",
"POST /get_missing_events/{roomId}", and "Server Access Control Lists (ACLs)".

Who may read: a server must pass the room's server ACL, and have a user joined to the
room now, unless the room is ``world_readable``; each event it gets must be visible to
it by the room's history visibility at that event (:func:`server_may_see`). Events it
may not see are served redacted in ``/backfill`` and ``/get_missing_events`` (so the
DAG stays walkable, as Synapse does), and not at all by ``/event``.

Everything is read through the room actor's read methods; nothing here opens a room's
file.
"""

from __future__ import annotations

import heapq
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence

from federation.transactions import joined_here, refuse_banned
from homeserver.errors import Forbidden, InvalidParam, MissingParam, NotFound
from homeserver.events.pdu import PDU
from homeserver.events.redaction import pruned_event
from homeserver.rooms.rules.visibility import (
    HISTORY_VISIBILITY_KEY, INVITED, SHARED, WORLD_READABLE, history_visibility)

MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 20
DEFAULT_MISSING_EVENTS = 10


def server_may_see(server_name: str, state: Mapping[tuple[str, str], PDU]) -> bool:
    """Whether ``server_name`` may see an event with ``state`` (member events and the
    history visibility) at it. Pure. A server sees what its users would: ``shared`` and
    ``world_readable`` history (the caller has checked it is in the room), ``invited``
    history if one of its users was invited or joined, ``joined`` if one was joined."""
    visibility = history_visibility(state)
    if visibility in (WORLD_READABLE, SHARED):
        return True
    wanted = {"join", "invite"} if visibility == INVITED else {"join"}
    for (event_type, user_id), event in state.items():
        if event_type == "m.room.member" and user_id.split(":", 1)[-1] == server_name \
                and event.content.get("membership") in wanted:
            return True
    return False


class Rooms(Protocol):
    def known(self, room_id: str) -> bool: ...
    def is_awake(self, room_id: str) -> bool: ...
    def get(self, room_id: str) -> Awaitable[Any]: ...


class RoomReads:
    """Answers to the read endpoints (module docstring); raise MatrixErrors."""

    def __init__(self, *, server_name: str, rooms: Rooms,
                 rooms_joined_by: Callable[[str], Awaitable[list[str]]],
                 now_ms: Callable[[], int],
                 room_of_event: Callable[[str], Awaitable[str | None]] | None = None
                 ) -> None:
        """``rooms_joined_by(server)``: the rooms where a user of ``server`` is joined
        (``store.streams.rooms_joined_by_server``); ``room_of_event(event_id)``: the room
        of a timeline event (``store.streams.room_of_event``)."""
        self._server_name = server_name
        self._rooms = rooms
        self._rooms_joined_by = rooms_joined_by
        self._room_of_event = room_of_event
        self._now_ms = now_ms

    def _envelope(self, pdus: Iterable[PDU]) -> dict[str, Any]:
        return {"origin": self._server_name, "origin_server_ts": self._now_ms(),
                "pdus": [p.get_dict() for p in pdus]}

    # -- access -----------------------------------------------------------------------
    async def _room_for(self, origin: str, room_id: str) -> Any:
        """The room's actor if ``origin`` may read it; 403/404 otherwise."""
        if not isinstance(room_id, str) or not room_id.startswith("!") \
                or not self._rooms.known(room_id):
            raise NotFound("Unknown room")
        try:
            actor = await self._rooms.get(room_id)
        except NotFound:
            raise NotFound("Unknown room") from None
        await refuse_banned(origin, actor)
        if not await joined_here(actor, origin):
            now = await actor.current_state([HISTORY_VISIBILITY_KEY])
            if history_visibility(now) != WORLD_READABLE:
                raise Forbidden("Host not in room")
        return actor

    async def _timeline_event(self, actor: Any, event_id: str) -> PDU:
        event = await actor.get_event(event_id)
        if event is None or event.internal_metadata.get("rejected"):
            raise NotFound("Event not found")
        return event

    async def _visible(self, actor: Any, origin: str, events: Sequence[PDU]
                       ) -> list[PDU]:
        """``events``, those ``origin`` may not see replaced by their redacted form."""
        by_group: dict[Any, bool] = {}
        shown = []
        for event in events:
            try:
                group = await actor.state_group_at(event.event_id)
            except NotFound:  # an outlier: no state to judge by, show it pruned
                shown.append(pruned_event(event))
                continue
            if group not in by_group:
                state = await actor.state_of_group(
                    group, [HISTORY_VISIBILITY_KEY, "m.room.member"])
                by_group[group] = server_may_see(origin, state)
            shown.append(event if by_group[group] else pruned_event(event))
        return shown

    # -- endpoints --------------------------------------------------------------------
    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        """``GET /event/{eventId}``: the event, if ``origin`` may see it. The request
        names no room, so we look in the rooms ``origin`` has users joined to (awake
        rooms first: waking a room costs a file open). A timeline event's room comes
        from the room stream first: the memberships index does not know the members
        of a room we joined over federation that were in its send_join state."""
        room_id = None if self._room_of_event is None else \
            await self._room_of_event(event_id)
        if room_id is not None:
            try:
                return await self.event_in_room(origin, room_id, event_id)
            except (NotFound, Forbidden):
                pass
        room_ids = await self._rooms_joined_by(origin)
        room_ids.sort(key=lambda r: not self._rooms.is_awake(r))
        for room_id in room_ids:
            try:
                return await self.event_in_room(origin, room_id, event_id)
            except (NotFound, Forbidden):
                continue
        raise NotFound("Event not found")

    async def event_in_room(self, origin: str, room_id: str, event_id: str
                            ) -> dict[str, Any]:
        """``GET /event/{eventId}`` when the room is known (see :meth:`event`)."""
        actor = await self._room_for(origin, room_id)
        event = await self._timeline_event(actor, event_id)
        [shown] = await self._visible(actor, origin, [event])
        if shown is not event and not event.internal_metadata.get("outlier"):
            raise NotFound("Event not found")
        return self._envelope([event])

    async def _state(self, origin: str, room_id: str, event_id: str | None
                     ) -> tuple[list[PDU], list[PDU]]:
        if not event_id:
            raise MissingParam("Missing parameter: event_id")
        actor = await self._room_for(origin, room_id)
        event = await self._timeline_event(actor, event_id)
        if event.internal_metadata.get("outlier"):
            raise NotFound("No state is known at this event")
        [shown] = await self._visible(actor, origin, [event])
        if shown is not event:
            raise Forbidden("You may not see the state at this event")
        state = list((await actor.state_at(event_id)).values())
        auth_chain = await actor.auth_chain([e.event_id for e in state])
        return state, auth_chain

    async def state(self, origin: str, room_id: str, event_id: str | None
                    ) -> dict[str, Any]:
        """``GET /state/{roomId}?event_id=``: the state before the event and its auth
        chain."""
        state, auth_chain = await self._state(origin, room_id, event_id)
        return {"pdus": [e.get_dict() for e in state],
                "auth_chain": [e.get_dict() for e in auth_chain]}

    async def state_ids(self, origin: str, room_id: str, event_id: str | None
                        ) -> dict[str, Any]:
        """``GET /state_ids/{roomId}?event_id=``: the same, as event IDs."""
        state, auth_chain = await self._state(origin, room_id, event_id)
        return {"pdu_ids": [e.event_id for e in state],
                "auth_chain_ids": [e.event_id for e in auth_chain]}

    async def event_auth(self, origin: str, room_id: str, event_id: str
                         ) -> dict[str, Any]:
        """``GET /event_auth/{roomId}/{eventId}``: the event's full auth chain."""
        actor = await self._room_for(origin, room_id)
        await self._timeline_event(actor, event_id)
        chain = await actor.auth_chain([event_id])
        return {"auth_chain": [e.get_dict() for e in chain]}

    async def backfill(self, origin: str, room_id: str, event_ids: Sequence[str],
                       limit: Any) -> dict[str, Any]:
        """``GET /backfill/{roomId}?v=&limit=``: up to ``limit`` events from ``v``
        backwards through prev events, deepest first, ``v`` included."""
        if not event_ids:
            raise MissingParam("Missing parameter: v")
        count = _int_param(limit, "limit")
        actor = await self._room_for(origin, room_id)
        events = await self._walk_back(actor, event_ids, min(count, MAX_BACKFILL),
                                       include_start=True)
        return self._envelope(await self._visible(actor, origin, events))

    async def timestamp_to_event(self, origin: str, room_id: str, ts: Any,
                                 direction: Any) -> dict[str, Any]:
        """``GET /timestamp_to_event/{roomId}?ts=&dir=`` (Server-Server API, v1.6): the
        timeline event closest to ``ts`` in direction ``dir`` ("f" or "b"), read from
        the room's own timestamp index, for a server that may read the room."""
        if ts is None:
            raise MissingParam("Missing parameter: ts")
        when = _int_param(ts, "ts")
        if direction not in ("f", "b"):
            raise InvalidParam("dir must be 'f' or 'b'")
        actor = await self._room_for(origin, room_id)
        found = await actor.read(
            lambda store: store.timestamps.closest(when, direction == "f"))
        if found is None:
            raise NotFound(f"No event found {'after' if direction == 'f' else 'before'} "
                           f"{when} in {room_id}")
        return {"event_id": found[0], "origin_server_ts": found[1]}

    async def get_missing_events(self, origin: str, room_id: str, body: Any
                                 ) -> dict[str, Any]:
        """``POST /get_missing_events/{roomId}``: events before ``latest_events`` back
        to ``earliest_events`` (excluded), no shallower than ``min_depth``, oldest
        first."""
        if not isinstance(body, Mapping):
            raise InvalidParam("Body must be a JSON object")
        earliest, latest = body.get("earliest_events", []), body.get("latest_events")
        if not _id_list(latest) or not _id_list(earliest):
            raise InvalidParam("earliest_events and latest_events must be lists of "
                               "event IDs")
        limit = min(_int_param(body.get("limit", DEFAULT_MISSING_EVENTS), "limit"),
                    MAX_MISSING_EVENTS)
        min_depth = _int_param(body.get("min_depth", 0), "min_depth")
        actor = await self._room_for(origin, room_id)
        events = await self._walk_back(actor, latest, limit, include_start=False,
                                       stop=set(earliest), min_depth=min_depth)
        events.sort(key=lambda e: (e.depth, e.internal_metadata.get("seq", 0)))
        return {"events": [e.get_dict() for e in await self._visible(actor, origin, events)]}

    async def _walk_back(self, actor: Any, start: Sequence[str], limit: int, *,
                         include_start: bool, stop: set[str] = frozenset(),
                         min_depth: int = 0) -> list[PDU]:
        """Events reached from ``start`` by prev edges, deepest first (a breadth-first
        walk by depth), skipping ``stop`` and anything shallower than ``min_depth``."""
        found: list[PDU] = []
        seen: set[str] = set(stop)
        queue: list[tuple[int, str]] = []

        async def push(ids: Iterable[str]) -> None:
            fresh = [i for i in ids if i not in seen]
            seen.update(fresh)
            for event_id, event in (await actor.get_events(fresh)).items():
                if not event.internal_metadata.get("outlier") \
                        and not event.internal_metadata.get("rejected") \
                        and event.depth >= min_depth:
                    heapq.heappush(queue, (-event.depth, event_id))

        if include_start:
            await push(start)
        else:
            starts = await actor.get_events([i for i in start if i not in seen])
            seen.update(start)
            await push([p for e in starts.values() for p in e.prev_event_ids])
        while queue and len(found) < limit:
            _, event_id = heapq.heappop(queue)
            event = await actor.get_event(event_id)
            if event is None:
                continue
            found.append(event)
            await push(event.prev_event_ids)
        return found


def _int_param(value: Any, name: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidParam(f"{name} must be an integer") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidParam(f"{name} must be a non-negative integer")
    return value


def _id_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
