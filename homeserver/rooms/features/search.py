"""Server-side search (spec: Client-Server API, "Server Side Search"; ``POST /search``).

Only the ``room_events`` category exists. Each room keeps its own full-text index
(:mod:`homeserver.rooms.storage.search_index`); a search runs the query in every room the
user is or was in (the spec includes rooms they left; history visibility then hides
what happened after they left) and merges the rooms' hits:

- ``recent``: newest first by ``origin_server_ts`` (then room ID, then arrival
  order): the only order comparable across rooms. ``next_batch`` is the position of
  the last result, so later pages never repeat or skip a hit.
- ``rank``: most relevant first (FTS5 BM25, highest ``rank`` first). ``next_batch``
  is an offset into that order.

Every hit passes the history visibility rules before it is counted or returned.
``count`` is exact up to :data:`COUNT_EXACT_UP_TO` matches per room and the raw
number of matches above (the spec allows an approximate count).
"""

from __future__ import annotations

import base64
import dataclasses
import heapq
import json
import re
from typing import Any, Callable, Mapping, Sequence

from homeserver.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound
from homeserver.events.client_format import serialize_event
from homeserver.events.pdu import PDU
from homeserver.rooms.actor.actor import RoomActor
from homeserver.rooms.features.visibility import HistoryVisibility
from homeserver.rooms.rules.event_filter import RoomEventFilter
from homeserver.rooms.rules.visibility import Viewer
from homeserver.rooms.storage.search_index import (
    COLUMN_TYPES, KEY_COLUMNS, MAX_SEQ, Hit, HitFilter, SearchQuery, parse_search_term)

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 50
MAX_TERM_LEN = 1000
#: a rank page may start at most this deep (the offset token is not a cursor)
MAX_RANK_OFFSET = 1000
COUNT_EXACT_UP_TO = 500
#: the rooms a user's search covers
SEARCHED_MEMBERSHIPS = ("join", "leave", "ban")


@dataclasses.dataclass(frozen=True)
class SearchRequest:
    """A validated ``room_events`` criteria object."""

    query: SearchQuery | None
    order_by: str
    filter: RoomEventFilter
    hit_filter: HitFilter
    limit: int
    context: tuple[int, int, bool] | None   # before, after, include_profile
    include_state: bool
    group_by: tuple[str, ...]


def parse_request(body: Mapping[str, Any]) -> SearchRequest | None:
    """Validate the request body; None if it asks for no ``room_events`` search."""
    categories = body.get("search_categories")
    if categories is None:
        raise MissingParam("Missing parameter: search_categories")
    if not isinstance(categories, dict):
        raise BadJson("search_categories must be an object")
    criteria = categories.get("room_events")
    if criteria is None:
        return None
    if not isinstance(criteria, dict):
        raise BadJson("room_events must be an object")
    term = criteria.get("search_term")
    if term is None:
        raise MissingParam("Missing parameter: search_term")
    if not isinstance(term, str):
        raise BadJson("search_term must be a string")
    if len(term) > MAX_TERM_LEN:
        raise InvalidParam(f"search_term is longer than {MAX_TERM_LEN} characters")
    keys = criteria.get("keys")
    if keys is not None:
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadJson("keys must be a list of strings")
        unknown = [k for k in keys if k not in KEY_COLUMNS]
        if unknown:
            raise InvalidParam(f"unknown search keys: {', '.join(unknown)}")
    order_by = criteria.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise InvalidParam("order_by must be 'rank' or 'recent'")
    event_filter = RoomEventFilter.parse(criteria.get("filter"))
    columns = tuple(c for c in _columns(keys) if _type_allowed(event_filter, COLUMN_TYPES[c]))
    query = parse_search_term(term, [k for k, c in KEY_COLUMNS.items() if c in columns])
    hit_filter = HitFilter(
        senders=None if event_filter.senders is None else frozenset(event_filter.senders),
        not_senders=frozenset(event_filter.not_senders), contains_url=event_filter.contains_url)
    context = None
    raw_context = criteria.get("event_context")
    if raw_context is not None:
        if not isinstance(raw_context, dict):
            raise BadJson("event_context must be an object")
        context = (_int(raw_context, "before_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
                   _int(raw_context, "after_limit", DEFAULT_CONTEXT, MAX_CONTEXT),
                   _bool(raw_context, "include_profile"))
    group_by: list[str] = []
    groupings = criteria.get("groupings")
    if groupings is not None:
        if not isinstance(groupings, dict) or not isinstance(
                groupings.get("group_by", []), list):
            raise BadJson("groupings.group_by must be a list")
        for group in groupings.get("group_by", []):
            key = group.get("key") if isinstance(group, dict) else None
            if key not in ("room_id", "sender"):
                raise InvalidParam("group_by keys must be 'room_id' or 'sender'")
            group_by.append(key)
    limit = min(event_filter.limit or DEFAULT_LIMIT, MAX_LIMIT)
    return SearchRequest(query, order_by, event_filter, hit_filter, limit, context,
                         _bool(criteria, "include_state"), tuple(dict.fromkeys(group_by)))


def _columns(keys: Sequence[str] | None) -> list[str]:
    return list(COLUMN_TYPES) if keys is None else [KEY_COLUMNS[k] for k in keys]


def _type_allowed(event_filter: RoomEventFilter, event_type: str) -> bool:
    def matches(patterns: Sequence[str]) -> bool:
        return any(re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")),
                                event_type) for pattern in patterns)

    if event_filter.not_types and matches(event_filter.not_types):
        return False
    return event_filter.types is None or matches(event_filter.types)


def _int(body: Mapping[str, Any], key: str, default: int, maximum: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadJson(f"{key} must be a non-negative integer")
    return min(value, maximum)


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadJson(f"{key} must be a boolean")
    return value


# -- pagination tokens ------------------------------------------------------------------
def _encode_token(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, order_by: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        raise InvalidParam("invalid next_batch token") from None
    if not isinstance(data, dict) or data.get("o") != order_by:
        raise InvalidParam("next_batch does not belong to this search")
    if order_by == "rank":
        if not isinstance(data.get("n"), int) or not 0 <= data["n"] <= MAX_RANK_OFFSET:
            raise InvalidParam("invalid next_batch token")
    elif not (isinstance(data.get("t"), int) and isinstance(data.get("s"), int)
              and isinstance(data.get("r"), str)):
        raise InvalidParam("invalid next_batch token")
    return data


@dataclasses.dataclass(frozen=True)
class _RoomHit:
    hit: Hit
    room_id: str

    def recent_key(self) -> tuple[int, str, int]:
        return (self.hit.origin_server_ts, self.room_id, self.hit.seq)


class SearchService:
    def __init__(self, *, rooms: Any, store: Any, visibility: HistoryVisibility,
                 relations: Any, now_ms: Callable[[], int]) -> None:
        self._rooms = rooms
        self._streams = store.streams
        self._visibility = visibility
        self._relations = relations
        self._now_ms = now_ms

    async def search(self, user_id: str, body: Mapping[str, Any],
                     next_batch: str | None = None) -> dict[str, Any]:
        """The response body of ``POST /search``."""
        request = parse_request(body)
        if request is None:
            return {"search_categories": {}}
        cursor = None if next_batch is None else _decode_token(next_batch, request.order_by)
        empty = {"results": [], "count": 0, "highlights": []}
        if request.query is None or request.limit == 0:
            return {"search_categories": {"room_events": empty}}
        memberships = await self._streams.get_rooms_for_user(user_id, SEARCHED_MEMBERSHIPS)
        rooms = sorted(m.room_id for m in memberships
                       if request.filter.allows_room(m.room_id))
        per_room: dict[str, tuple[RoomActor, Viewer, list[_RoomHit]]] = {}
        total = 0
        offset = cursor["n"] if cursor and request.order_by == "rank" else 0
        for room_id in rooms:
            try:
                actor = await self._rooms.get(room_id)
            except NotFound:
                continue
            viewer = await self._visibility.viewer(actor, user_id)
            before = None if cursor is None or request.order_by == "rank" \
                else _room_bound(room_id, cursor)
            hits = await self._visible_hits(actor, viewer, request, request.limit + offset,
                                            before)
            per_room[room_id] = (actor, viewer, [_RoomHit(h, room_id) for h in hits])
            total += await self._count(actor, viewer, request)
        merged = _merge([hits for _, _, hits in per_room.values()], request.order_by)
        page = merged[offset:offset + request.limit]
        results, highlights = [], set(request.query.words)
        for room_hit in page:
            actor, viewer, _ = per_room[room_hit.room_id]
            highlights |= room_hit.hit.highlights
            event = await actor.get_event(room_hit.hit.event_id)
            if event is None:
                continue
            serialized = (await self._relations.serialize(actor, user_id, [event]))[0]
            result: dict[str, Any] = {"rank": room_hit.hit.rank, "result": serialized}
            if request.context is not None:
                result["context"] = await self._context(actor, user_id, viewer, event,
                                                        *request.context)
            results.append(result)
        room_events: dict[str, Any] = {"results": results, "count": total,
                                       "highlights": sorted(highlights)}
        if len(page) == request.limit:
            last = page[-1]
            if request.order_by == "rank":
                if offset + request.limit <= MAX_RANK_OFFSET:
                    room_events["next_batch"] = _encode_token(
                        {"o": "rank", "n": offset + request.limit})
            else:
                room_events["next_batch"] = _encode_token(
                    {"o": "recent", "t": last.hit.origin_server_ts, "r": last.room_id,
                     "s": last.hit.seq})
        if request.group_by:
            room_events["groups"] = _groups(results, request.group_by)
        if request.include_state:
            room_events["state"] = await self._state(
                user_id, {h.room_id for h in page}, per_room)
        return {"search_categories": {"room_events": room_events}}

    async def _visible_hits(self, actor: RoomActor, viewer: Viewer,
                            request: SearchRequest, need: int,
                            before: tuple[int, int] | None) -> list[Hit]:
        """Up to ``need`` hits of one room the viewer may see, in the request's order."""
        found: list[Hit] = []
        offset, batch = 0, max(need, 20)
        while len(found) < need:
            hits = await actor.read(lambda store, o=offset: store.search.search(
                request.query, order_by=request.order_by, limit=batch, offset=o,
                before=before, hit_filter=request.hit_filter))
            found += await self._only_visible(actor, viewer, hits)
            if len(hits) < batch:
                break
            offset += batch
        return found[:need]

    async def _only_visible(self, actor: RoomActor, viewer: Viewer,
                            hits: Sequence[Hit]) -> list[Hit]:
        events = await actor.get_events(h.event_id for h in hits)
        visible = []
        for hit in hits:
            event = events.get(hit.event_id)
            if event is not None and await self._visibility.is_visible(actor, viewer, event):
                visible.append(hit)
        return visible

    async def _count(self, actor: RoomActor, viewer: Viewer, request: SearchRequest) -> int:
        raw = await actor.read(lambda store: store.search.count(request.query,
                                                                request.hit_filter))
        if raw == 0 or raw > COUNT_EXACT_UP_TO:
            return raw
        hits = await actor.read(lambda store: store.search.search(
            request.query, order_by="recent", limit=raw, hit_filter=request.hit_filter))
        return len(await self._only_visible(actor, viewer, hits))

    async def _context(self, actor: RoomActor, user_id: str, viewer: Viewer, event: PDU,
                       before_limit: int, after_limit: int,
                       include_profile: bool) -> dict[str, Any]:
        """The events around a result (as ``/context`` would give them)."""
        start = await actor.token_before(event.event_id)
        after_token = await actor.read(lambda store: store.token_after(event.event_id))
        before, start_next = await actor.paginate(start, "b", before_limit)
        after, end_next = await actor.paginate(str(after_token), "f", after_limit)
        before = await self._visibility.filter_events(actor, user_id, before, viewer)
        after = await self._visibility.filter_events(actor, user_id, after, viewer)
        now = self._now_ms()
        context: dict[str, Any] = {
            "events_before": [serialize_event(e, now) for e in before],
            "events_after": [serialize_event(e, now) for e in after],
            "start": start_next or start, "end": end_next or str(after_token)}
        if include_profile:
            senders = {e.sender for e in (event, *before, *after)}
            keys = [("m.room.member", s) for s in sorted(senders)]
            try:
                state = await actor.state_at(event.event_id, types=keys)
            except NotFound:
                state = {}
            profiles = {}
            for (_, sender), member in state.items():
                info = {k: member.content[k] for k in ("displayname", "avatar_url")
                        if isinstance(member.content.get(k), str)}
                profiles[sender] = info
            context["profile_info"] = profiles
        return context

    async def _state(self, user_id: str, room_ids: set[str],
                     per_room: Mapping[str, tuple[RoomActor, Viewer, Any]]
                     ) -> dict[str, list[dict[str, Any]]]:
        """Current state of each result room (as of leaving, for a room they left)."""
        now = self._now_ms()
        out: dict[str, list[dict[str, Any]]] = {}
        for room_id in sorted(room_ids):
            actor = per_room[room_id][0]
            try:
                access = await self._visibility.access(actor, user_id)
            except Forbidden:
                continue
            if access.left_event is not None:
                state = await actor.state_at(access.left_event.event_id, after=True)
            else:
                state = await actor.current_state()
            out[room_id] = [serialize_event(e, now) for e in state.values()]
        return out


def _room_bound(room_id: str, cursor: Mapping[str, Any]) -> tuple[int, int]:
    """The (ts, seq) bound below which a room's hits come after the cursor in the
    global (ts, room_id, seq) descending order."""
    ts, cursor_room, seq = cursor["t"], cursor["r"], cursor["s"]
    if room_id < cursor_room:
        return ts, MAX_SEQ      # same ts allowed: this room sorts after the cursor's
    if room_id == cursor_room:
        return ts, seq
    return ts, 0                # strictly older only


def _merge(lists: Sequence[list[_RoomHit]], order_by: str) -> list[_RoomHit]:
    if order_by == "recent":
        key = _RoomHit.recent_key
    else:
        def key(h: _RoomHit):
            return (h.hit.rank, h.hit.origin_server_ts, h.room_id, h.hit.seq)
    return list(heapq.merge(*lists, key=key, reverse=True))


def _groups(results: Sequence[Mapping[str, Any]], group_by: Sequence[str]
            ) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for key in group_by:
        by_value: dict[str, dict[str, Any]] = {}
        for result in results:
            event = result["result"]
            value = event["room_id"] if key == "room_id" else event["sender"]
            group = by_value.setdefault(value, {"results": [], "order": len(by_value) + 1})
            group["results"].append(event["event_id"])
        groups[key] = by_value
    return groups
