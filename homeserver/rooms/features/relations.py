"""Relations, threads and bundled aggregations (spec: Client-Server API,
"Relationships API", "Aggregations of child events", "Threading").

Built on each room's relations index (:mod:`homeserver.rooms.storage.relations`), read
through the room's actor, with history visibility applied to every event a user is
shown (:mod:`homeserver.rooms.features.visibility`).

For other endpoints that serve events (``/messages``, ``/context``, ``/event``,
``/sync``): :meth:`RelationsService.bundled_aggregations` gives
``event_id → unsigned["m.relations"]`` for a batch of events of one room, and
:meth:`RelationsService.check_new_relation` refuses a thread started off an event that
itself has a relation (spec: "Validation of m.thread relationships").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from homeserver.errors import Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events.client_format import serialize_event
from homeserver.events.pdu import PDU
from homeserver.events.redaction import pruned_event
from homeserver.rooms.actor.actor import RoomActor
from homeserver.rooms.features.visibility import HistoryVisibility
from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.storage.relations import (
    MAX_RECURSION, REFERENCE, REPLACE, THREAD, relation_of)
from homeserver.sync.tokens import StreamToken

#: /relations and /threads page sizes: default and ceiling
DEFAULT_LIMIT = 5
DEFAULT_THREADS_LIMIT = 20
MAX_LIMIT = 100
#: bundled m.reference chunks list at most this many children
MAX_REFERENCES = 100
IGNORED_USERS = "m.ignored_user_list"


class RelationsService:
    def __init__(self, *, rooms: Any, store: Any, visibility: HistoryVisibility,
                 now_ms: Callable[[], int], serializer: Any = None) -> None:
        """``serializer``: the rooms layer's ``ClientEventSerializer`` (``prev_content``,
        ``redacted_because``, ``transaction_id``); without one, events get the plain
        client format plus ``redacted_because``."""
        self._rooms = rooms
        self._account_data = store.account_data
        self._positions = store.room_positions
        self._visibility = visibility
        self._now_ms = now_ms
        self._serializer = serializer

    # -- GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] -------------
    async def relations(self, user_id: str, room_id: str, event_id: str, *,
                        rel_type: str | None = None, event_type: str | None = None,
                        from_token: str | None = None, to_token: str | None = None,
                        limit: int = DEFAULT_LIMIT, direction: str = "b",
                        recurse: bool | None = None) -> dict[str, Any]:
        """The response body of the relations endpoints.

        M_NOT_FOUND if the room or parent is unknown or not visible to the user.
        """
        dir_ = Direction.parse(direction)
        actor = await self._readable_room(room_id, user_id, not_found=True)
        viewer = await self._visibility.viewer(actor, user_id)
        parent = await actor.get_event(event_id)
        if parent is None or not await self._visibility.is_visible(actor, viewer, parent):
            raise NotFound("Event not found.")
        start = await self._position(actor, from_token)
        end = await self._position(actor, to_token)
        depth = MAX_RECURSION if recurse else 1
        chunk: list[PDU] = []
        token, next_token = start, None
        while True:
            ids, more = await actor.read(lambda store, t=token: store.relations.children(
                event_id, rel_type=rel_type, event_type=event_type, direction=dir_,
                from_token=t, to_token=end, limit=limit - len(chunk), max_depth=depth))
            found = await actor.get_events(ids)
            events = [found[i] for i in ids if i in found]
            chunk += await self._visibility.filter_events(actor, user_id, events, viewer)
            if more is None or len(chunk) >= limit:
                next_token = more
                break
            token = more  # some were hidden from this user: read on
        body: dict[str, Any] = {
            "chunk": await self.serialize(actor, user_id, chunk)}
        if next_token is not None:
            body["next_batch"] = str(next_token)
        if from_token is not None:
            body["prev_batch"] = from_token
        if recurse is not None:
            body["recursion_depth"] = depth
        return body

    # -- GET /rooms/{roomId}/threads ------------------------------------------------------
    async def threads(self, user_id: str, room_id: str, *, include: str = "all",
                      from_token: str | None = None, limit: int = DEFAULT_THREADS_LIMIT
                      ) -> dict[str, Any]:
        """The response body of ``/threads``: thread roots by latest activity."""
        if include not in ("all", "participated"):
            raise InvalidParam("include must be 'all' or 'participated'")
        before = None if from_token is None else TopologicalToken.parse(from_token)
        actor = await self._readable_room(room_id, user_id, not_found=False)
        viewer = await self._visibility.viewer(actor, user_id)
        ignored = await self.ignored_users(user_id)
        participant = user_id if include == "participated" else None
        roots: list[PDU] = []
        next_batch = None
        while True:
            rows = await actor.read(lambda store, b=before: store.relations.threads(
                before=b, limit=limit, participant=participant, ignored=ignored))
            found = await actor.get_events(r.root_id for r in rows)
            for row in rows:
                root = found.get(row.root_id)
                if root is None or not await self._visibility.is_visible(actor, viewer,
                                                                          root):
                    continue
                roots.append(root)
                if len(roots) == limit:
                    next_batch = str(row.token)
                    break
            if len(roots) == limit or len(rows) < limit:
                break
            before = rows[-1].token
        shown = [_redacted(r) if r.sender in ignored else r for r in roots]
        body: dict[str, Any] = {"chunk": await self.serialize(actor, user_id, shown,
                                                               ignored=ignored)}
        if next_batch is not None:
            body["next_batch"] = next_batch
        return body

    # -- shared by endpoints that serve events ----------------------------------------
    async def ignored_users(self, user_id: str) -> frozenset[str]:
        content = await self._account_data.get_account_data(user_id, IGNORED_USERS)
        users = content.get("ignored_users") if isinstance(content, dict) else None
        return frozenset(users) if isinstance(users, dict) else frozenset()

    async def bundled_aggregations(self, actor: RoomActor, user_id: str,
                                   events: Sequence[PDU], *,
                                   ignored: frozenset[str] | None = None,
                                   with_threads: bool = True) -> dict[str, dict[str, Any]]:
        """``event_id → m.relations`` for the (non-state) events that have some.

        ``m.thread``: count, latest event (itself bundled with its edit) and whether
        the user took part; ``m.replace``: the most recent valid edit; ``m.reference``:
        the referencing event IDs. Children from ignored users are left out.
        """
        if ignored is None:
            ignored = await self.ignored_users(user_id)
        # state events get no bundles (spec); a redacted event keeps its thread and
        # references but never an edit (the index leaves those out)
        by_id = {e.event_id: e for e in events if not e.is_state()}
        if not by_id:
            return {}
        ids = list(by_id)

        def query(store):
            rel = store.relations
            return (rel.thread_summaries(ids, ignored) if with_threads else {},
                    rel.thread_participants(ids, user_id) if with_threads else set(),
                    rel.edit_candidates(ids), rel.references(ids, MAX_REFERENCES))

        threads, participated, edit_ids, references = await actor.read(query)
        bundles: dict[str, dict[str, Any]] = {}
        edits = await self._latest_edits(actor, by_id, edit_ids)
        now = self._now_ms()
        for event_id, edit in edits.items():
            bundles.setdefault(event_id, {})[REPLACE] = serialize_event(edit, now)
        for event_id, refs in references.items():
            bundles.setdefault(event_id, {})[REFERENCE] = {
                "chunk": [{"event_id": r} for r in refs]}
        if threads:
            latest = await actor.get_events(s.latest_event_id for s in threads.values())
            latest_list = list(latest.values())
            latest_bundles = await self.bundled_aggregations(
                actor, user_id, latest_list, ignored=ignored, with_threads=False)
            for root_id, summary in threads.items():
                event = latest.get(summary.latest_event_id)
                if event is None:
                    continue
                serialized = serialize_event(event, now)
                if event.event_id in latest_bundles:
                    serialized["unsigned"]["m.relations"] = latest_bundles[event.event_id]
                bundles.setdefault(root_id, {})[THREAD] = {
                    "latest_event": serialized, "count": summary.count,
                    "current_user_participated":
                        by_id[root_id].sender == user_id or root_id in participated}
        return bundles

    async def serialize(self, actor: RoomActor, user_id: str, events: Sequence[PDU], *,
                        ignored: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Client-format events with their bundled aggregations (and, for redacted
        events, ``redacted_because``)."""
        bundles = await self.bundled_aggregations(actor, user_id, events, ignored=ignored)
        if self._serializer is not None:
            out = await self._serializer.serialize(actor, events, user_id=user_id)
            for event, serialized in zip(events, out):
                if event.event_id in bundles:
                    serialized.setdefault("unsigned", {})["m.relations"] = \
                        bundles[event.event_id]
            return out
        now = self._now_ms()
        out = []
        for event in events:
            because = None
            redacted_by = event.internal_metadata.get("redacted_by")
            if redacted_by:
                redaction = await actor.get_event(redacted_by)
                because = serialize_event(redaction, now) if redaction else None
            serialized = serialize_event(event, now, redacted_because=because)
            if event.event_id in bundles:
                serialized["unsigned"]["m.relations"] = bundles[event.event_id]
            out.append(serialized)
        return out

    async def check_new_relation(self, actor: RoomActor, content: Any) -> None:
        """Refuse (400 M_UNKNOWN) a thread rooted at an event that has a relation
        itself, or a thread / edit of an event this room does not have."""
        relation = relation_of(content)
        if relation is None or relation[1] not in (THREAD, REPLACE):
            return
        parent_id, rel_type = relation
        parent = await actor.get_event(parent_id)
        if parent is None:
            raise MatrixError("The event being related to is unknown", errcode="M_UNKNOWN")
        if rel_type == THREAD and relation_of(parent.content) is not None:
            raise MatrixError("Cannot start a thread from an event with a relation",
                              errcode="M_UNKNOWN")

    # -- helpers ------------------------------------------------------------------------
    async def _readable_room(self, room_id: str, user_id: str, *, not_found: bool
                             ) -> RoomActor:
        try:
            actor = await self._rooms.get(room_id)
            await self._visibility.access(actor, user_id)
        except (NotFound, Forbidden):
            if not_found:
                raise NotFound("Event not found.") from None
            raise Forbidden("You are not allowed to view this room.") from None
        return actor

    async def _position(self, actor: RoomActor, token: str | None
                        ) -> TopologicalToken | None:
        """A /relations ``from``/``to``: a /messages token, or a /sync ``next_batch``
        (the point just after the room's last event at that sync)."""
        if token is None:
            return None
        if not token.startswith("s"):
            return TopologicalToken.parse(token)
        position = StreamToken.parse(token).room
        last = await self._positions.last_event_at(actor.room_id, position)
        if last is None:
            return TopologicalToken.START
        found = await actor.read(lambda store: store.token_after(last[1]))
        return found or TopologicalToken.START

    async def _latest_edits(self, actor: RoomActor, originals: dict[str, PDU],
                            candidates: dict[str, list[str]]) -> dict[str, PDU]:
        """The most recent valid replacement of each original (spec: "Validity of
        replacement events"; the index already checked sender, type and state)."""
        wanted = [i for ids in candidates.values() for i in ids]
        if not wanted:
            return {}
        events = await actor.get_events(wanted)
        chosen: dict[str, PDU] = {}
        for original_id, ids in candidates.items():
            original = originals.get(original_id)
            if original is None:
                continue
            if (relation_of(original.content) or ("", ""))[1] == REPLACE:
                continue  # an edit is never itself edited
            for edit_id in ids:
                edit = events.get(edit_id)
                if edit is not None and _valid_edit(edit):
                    chosen[original_id] = edit
                    break
        return chosen


def _valid_edit(edit: PDU) -> bool:
    if edit.type == "m.room.encrypted":
        return True
    return isinstance(edit.content.get("m.new_content"), dict)


def _redacted(event: PDU) -> PDU:
    """The pruned form of ``event`` (a thread root from an ignored user)."""
    return pruned_event(event)
