"""Reading a room's history and state as one user may see it.

Spec: Client-Server API, ``GET /rooms/{roomId}/messages`` (message_pagination),
``/context/{eventId}`` (event_context), ``/event/{eventId}``, ``/state``,
``/state/{eventType}/{stateKey}``, ``/members``, ``/joined_members``.

Who may read: joined members read the room now; members who left or were banned read
it as it was when they left; anyone reads a world-readable room; everyone else gets
M_FORBIDDEN (``HistoryVisibility.access``). Every event returned also passes the
history visibility rules, and non-state events of ignored users are left out.

Pagination tokens: ``t<depth>_<seq>`` cuts in the room's topological order
(:mod:`homeserver.rooms.rules.pagination`), or a ``/sync`` token (``s…``), which names the
room's last event at that position of the room stream.

Earlier history held elsewhere: when a backward walk with no ``to`` bound runs out of
events, the room's history may go on at other servers (a room joined over federation
starts at the join). With federation attached (:meth:`RoomHistory.attach_backfill`),
the walk then waits for a backfill of what lies before that point
(``federation.backfill``) and reads on into it; a backfill that fails or brings
nothing ends the walk as before.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Sequence

from homeserver.errors import Forbidden, InvalidParam, NotFound
from homeserver.events.pdu import PDU
from homeserver.rooms.actor.actor import RoomActor
from homeserver.rooms.features.client_events import ClientEventSerializer
from homeserver.rooms.features.visibility import HistoryVisibility
from homeserver.rooms.rules.event_filter import RoomEventFilter
from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.rules.visibility import Access, Viewer
from homeserver.sync.tokens import StreamToken

#: /messages and /context: default and maximum number of events
DEFAULT_LIMIT, MAX_LIMIT = 10, 1000
#: /messages scans at most this many pages of hidden or filtered-out events
_MAX_ROUNDS = 10
_MIN_PAGE = 20


def _after(event: PDU) -> TopologicalToken:
    """The cut just after ``event`` (it lies before the cut)."""
    return TopologicalToken(event.depth, event.internal_metadata["seq"])


def _before(event: PDU) -> TopologicalToken:
    return TopologicalToken(event.depth, event.internal_metadata["seq"] - 1)


class RoomHistory:
    def __init__(self, *, rooms, store, visibility: HistoryVisibility,
                 serializer: ClientEventSerializer,
                 ignored_users: Callable[[str], Awaitable[frozenset[str]]]) -> None:
        self._rooms = rooms
        self._store = store
        self._visibility = visibility
        self._serializer = serializer
        self._ignored_users = ignored_users
        self._backfill: Callable[[RoomActor, int], Awaitable[bool]] | None = None

    def attach_backfill(self, backfill: Callable[[RoomActor, int], Awaitable[bool]]
                        ) -> None:
        """``backfill(actor, depth)``: fetch and store the room's history before the
        events it cites from no deeper than ``depth`` and lacks; whether anything new
        was stored (``federation.backfill.Backfiller.backfill``; never raises)."""
        self._backfill = backfill

    async def _open(self, room_id: str, user_id: str) -> tuple[RoomActor, Access]:
        actor = await self._rooms.get(room_id)
        return actor, await self._visibility.access(actor, user_id)

    # -- tokens -------------------------------------------------------------------------
    async def _token(self, actor: RoomActor, text: str | None) -> TopologicalToken | None:
        if text is None or text == "":
            return None
        if text.startswith("s"):
            position = StreamToken.parse(text).room
            found = await self._store.room_positions.last_event_at(actor.room_id, position)
            if found is None:
                return TopologicalToken.START  # type: ignore[attr-defined]
            event = await actor.get_event(found[1])
            if event is None:
                raise InvalidParam(f"invalid pagination token {text!r}")
            return _after(event)
        return TopologicalToken.parse(text)

    # -- /messages ----------------------------------------------------------------------
    async def messages(self, room_id: str, user_id: str, *, direction: str,
                       from_token: str | None = None, to_token: str | None = None,
                       limit: int = DEFAULT_LIMIT,
                       event_filter: RoomEventFilter | None = None,
                       scope: str | None = None) -> dict[str, Any]:
        """GET /rooms/{roomId}/messages: ``{start, end?, chunk, state?}``."""
        event_filter = event_filter or RoomEventFilter()
        dir_ = Direction.parse(direction)
        actor, access = await self._open(room_id, user_id)
        start = await self._token(actor, from_token)
        stop = await self._token(actor, to_token)
        if access.left_event is not None and not access.world_readable:
            # nothing after they left is theirs to see (unless the room became
            # world-readable): don't even scan it
            cap = _after(access.left_event)
            if dir_ is Direction.BACKWARDS:
                start = cap if start is None or start > cap else start
            else:
                stop = cap if stop is None or stop > cap else stop
        if start is None:
            if dir_ is Direction.BACKWARDS:
                newest, _ = await actor.paginate(None, dir_, 1)
                start = _after(newest[0]) if newest else TopologicalToken.START  # type: ignore[attr-defined]
            else:
                start = TopologicalToken.START  # type: ignore[attr-defined]
        limit = max(0, min(limit, MAX_LIMIT))
        chunk, end = await self._scan(actor, user_id, dir_, start, stop, limit,
                                      event_filter)
        response: dict[str, Any] = {
            # spec: "the same as the value given in from" (a /sync token stays one)
            "start": from_token if from_token else str(start),
            "chunk": await self._serialize_timeline(actor, chunk, user_id, scope)}
        if end is not None:
            response["end"] = str(end)
        if event_filter.lazy_load_members and chunk:
            newest = chunk[0] if dir_ is Direction.BACKWARDS else chunk[-1]
            response["state"] = await self._member_state(actor, newest, chunk, user_id)
        return response

    async def _scan(self, actor: RoomActor, user_id: str, dir_: Direction,
                    start: TopologicalToken, stop: TopologicalToken | None, limit: int,
                    event_filter: RoomEventFilter
                    ) -> tuple[list[PDU], TopologicalToken | None]:
        """Walk from ``start`` until ``limit`` visible, matching events are found.

        Returns them and the token to continue from (None: nothing further exists,
        or the filter lets nothing of this room through).
        """
        if limit == 0:
            return [], start
        if not event_filter.allows_room(actor.room_id):
            return [], None
        viewer = await self._visibility.viewer(actor, user_id)
        found, cursor = await self._walk(actor, viewer, user_id, dir_, start, stop, limit,
                                         event_filter)
        return await self._visibility.as_seen(actor, user_id, found), cursor

    async def _walk(self, actor: RoomActor, viewer: Viewer, user_id: str, dir_: Direction,
                    start: TopologicalToken, stop: TopologicalToken | None, limit: int,
                    event_filter: RoomEventFilter
                    ) -> tuple[list[PDU], TopologicalToken | None]:
        ignored = await self._ignored_users(user_id)
        found: list[PDU] = []
        cursor, page = start, max(limit, _MIN_PAGE)
        # one backfill per request: a client asking for more gets the next one
        may_backfill = self._backfill is not None and dir_ is Direction.BACKWARDS \
            and stop is None
        backfilled = False
        for _ in range(_MAX_ROUNDS):
            events, _token = await actor.paginate(
                str(cursor), dir_, page, None if stop is None else str(stop))
            for event in events:
                cursor = _before(event) if dir_ is Direction.BACKWARDS else _after(event)
                if await self._shown(actor, viewer, event, event_filter, ignored):
                    found.append(event)
                    if len(found) == limit:
                        return found, cursor
            if len(events) < page and may_backfill and not backfilled:
                backfilled = await self._backfill(actor, cursor.depth)
                if backfilled:
                    continue  # read on from the same cut into what arrived
            if len(events) < page:
                # The end of the room (or of the requested range) is reached. A page
                # that found events still ends with a token, as in Synapse: clients
                # keep a complete backward walk's last `end` as the point before the
                # room's earliest event, and read the room from the start with dir=f
                # from it. Only a page that found nothing omits `end` ("no further
                # events"), so a walk ends with one empty page (a backfill that
                # brought only events hidden from this user is not the end).
                return found, cursor if found or backfilled else None
        return found, cursor

    async def _shown(self, actor: RoomActor, viewer: Viewer, event: PDU,
                     event_filter: RoomEventFilter, ignored: frozenset[str]) -> bool:
        if not event_filter.matches(event):
            return False
        if event.sender in ignored and not event.is_state():
            return False
        return await self._visibility.is_visible(actor, viewer, event)

    async def _member_state(self, actor: RoomActor, at: PDU, events: Sequence[PDU],
                            user_id: str) -> list[dict[str, Any]]:
        """Lazy-loading: the member events of the senders of ``events`` (spec
        "Lazy-loading room members"), as of ``at``."""
        senders = sorted({e.sender for e in events})
        state = await actor.state_at(at.event_id, after=True,
                                     types=[("m.room.member", s) for s in senders])
        members = [state[k] for k in sorted(state)]
        return await self._serializer.serialize(actor, members, user_id=user_id,
                                                prev_content=False)

    # -- /context -----------------------------------------------------------------------
    async def context(self, room_id: str, user_id: str, event_id: str, *,
                      limit: int = DEFAULT_LIMIT,
                      event_filter: RoomEventFilter | None = None,
                      scope: str | None = None) -> dict[str, Any]:
        """GET /rooms/{roomId}/context/{eventId}."""
        event_filter = event_filter or RoomEventFilter()
        actor, access = await self._open(room_id, user_id)
        event = await self._visible_event(actor, user_id, event_id)
        limit = max(0, min(limit, MAX_LIMIT))
        before_limit = limit // 2
        stop = _after(access.left_event) \
            if access.left_event is not None and not access.world_readable else None
        before, _ = await self._scan(actor, user_id, Direction.BACKWARDS, _before(event),
                                     None, before_limit, event_filter)
        after, _ = await self._scan(actor, user_id, Direction.FORWARDS, _after(event),
                                    stop, limit - before_limit, event_filter)
        last = after[-1] if after else event
        if event_filter.lazy_load_members:
            state = await self._member_state(actor, last, [event, *before, *after], user_id)
        else:
            state_map = await actor.state_at(last.event_id, after=True)
            state_events = [state_map[k] for k in sorted(state_map)
                            if event_filter.matches(state_map[k])]
            state = await self._serializer.serialize(actor, state_events, user_id=user_id,
                                                     prev_content=False)
        serialize = self._serialize_timeline
        return {
            "start": str(_before(before[-1] if before else event)),
            "end": str(_after(last)),
            "event": (await serialize(actor, [event], user_id, scope))[0],
            "events_before": await serialize(actor, before, user_id, scope),
            "events_after": await serialize(actor, after, user_id, scope),
            "state": state,
        }

    async def _serialize_timeline(self, actor: RoomActor, events: Sequence[PDU],
                                  user_id: str, scope: str | None) -> list[dict[str, Any]]:
        """Timeline events with ``unsigned.membership``, the user's membership at each
        (spec: "UnsignedData", MSC4115; Synapse adds it wherever it filters events
        for a client, state listings excepted)."""
        memberships = await self._visibility.memberships_at(actor, user_id, events)
        return await self._serializer.serialize(actor, events, user_id=user_id,
                                                scope=scope, memberships=memberships)

    async def _visible_event(self, actor: RoomActor, user_id: str, event_id: str) -> PDU:
        event = await actor.get_event(event_id)
        if event is None or event.internal_metadata.get("outlier") \
                or event.internal_metadata.get("rejected") \
                or event.internal_metadata.get("soft_failed"):
            raise NotFound("Event not found.")
        viewer = await self._visibility.viewer(actor, user_id)
        if not await self._visibility.is_visible(actor, viewer, event):
            raise NotFound("Event not found.")
        return (await self._visibility.as_seen(actor, user_id, [event]))[0]

    # -- /event -------------------------------------------------------------------------
    async def event(self, room_id: str, user_id: str, event_id: str, *,
                    scope: str | None = None) -> dict[str, Any]:
        """GET /rooms/{roomId}/event/{eventId} (404 if unknown or not visible)."""
        actor = await self._rooms.get(room_id)
        try:
            await self._visibility.access(actor, user_id)
        except Forbidden:
            raise NotFound("Event not found.") from None
        event = await self._visible_event(actor, user_id, event_id)
        return (await self._serialize_timeline(actor, [event], user_id, scope))[0]

    # -- state --------------------------------------------------------------------------
    async def _readable_state(self, actor: RoomActor, access: Access, types=None):
        if access.left_event is not None:
            return await actor.state_at(access.left_event.event_id, after=True, types=types)
        return await actor.current_state(types)

    async def state(self, room_id: str, user_id: str) -> list[dict[str, Any]]:
        """GET /rooms/{roomId}/state: the state now, or when the user left."""
        actor, access = await self._open(room_id, user_id)
        state = await self._readable_state(actor, access)
        return await self._serializer.serialize(actor, [state[k] for k in sorted(state)],
                                                user_id=user_id, prev_content=False)

    async def state_event(self, room_id: str, user_id: str, event_type: str,
                          state_key: str) -> PDU:
        """GET /rooms/{roomId}/state/{eventType}/{stateKey}'s event (404 if none)."""
        actor, access = await self._open(room_id, user_id)
        key = (event_type, state_key)
        event = (await self._readable_state(actor, access, [key])).get(key)
        if event is None:
            raise NotFound("Event not found.")
        return event

    async def serialize_one(self, room_id: str, event: PDU, user_id: str) -> dict[str, Any]:
        actor = await self._rooms.get(room_id)
        return (await self._serializer.serialize(actor, [event], user_id=user_id))[0]

    # -- members ------------------------------------------------------------------------
    async def members(self, room_id: str, user_id: str, *, at: str | None = None,
                      membership: str | None = None,
                      not_membership: str | None = None) -> list[dict[str, Any]]:
        """GET /rooms/{roomId}/members: member events now, at ``at``, or at leaving."""
        actor, access = await self._open(room_id, user_id)
        point = await self._token(actor, at)
        if access.left_event is not None:
            cap = _after(access.left_event)
            point = cap if point is None or point > cap else point
        if point is None:
            members = await actor.members()
        else:
            last, _ = await actor.paginate(str(point), Direction.BACKWARDS, 1)
            if not last:
                members = {}
            else:
                state = await actor.state_at(last[0].event_id, after=True,
                                             types=["m.room.member"])
                members = {k: e for (_, k), e in state.items()}

        def wanted(event: PDU) -> bool:
            value = event.membership
            if membership is not None and not_membership is not None:
                return value == membership or value != not_membership
            if membership is not None:
                return value == membership
            return not_membership is None or value != not_membership

        chosen = [members[u] for u in sorted(members) if wanted(members[u])]
        return await self._serializer.serialize(actor, chosen, user_id=user_id,
                                                prev_content=False)

    async def joined_members(self, room_id: str, user_id: str) -> dict[str, Any]:
        """GET /rooms/{roomId}/joined_members (joined members only may ask)."""
        actor = await self._rooms.get(room_id)
        if await actor.membership(user_id) != "join":
            raise Forbidden("Getting joined members while not being a current member of "
                            "the room is forbidden.")
        joined = {}
        for member_id, event in sorted((await actor.members("join")).items()):
            info = {}
            for key, out in (("displayname", "display_name"), ("avatar_url", "avatar_url")):
                value = event.content.get(key)
                if isinstance(value, str):
                    info[out] = value
            joined[member_id] = info
        return {"joined": joined}
