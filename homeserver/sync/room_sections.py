"""The per-room parts of a /sync response: ``rooms.join``, ``leave``, ``invite`` and
``knock`` (spec: data/api/client-server/sync.yaml; "Syncing"; "Lazy-loading room
members").

``state`` follows the spec's definition (state at the *start* of the timeline, or the
delta from ``since`` to it) computed as
``(state at timeline start ∪ state at range end) − state at since − timeline``: with
an unfiltered timeline the range-end part is all in the timeline, and with a filtered
one it still carries the state changes the filter hid (Synapse does the same).
An incremental, unlimited, unfiltered timeline carries every change itself, so its
``state`` is empty without any state read.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from homeserver.errors import NotFound
from homeserver.events.client_format import STRIPPED_STATE_TYPES, strip_state_event
from homeserver.events.pdu import PDU
from homeserver.sync.filters import SyncFilter
from homeserver.sync.lazy_members import LazyMemberCache
from homeserver.sync.serialize import EventSerializer
from homeserver.sync.timeline import Timeline, load_timeline, seq_of
from homeserver.sync.tokens import StreamToken
from homeserver.sync.unread import UnreadCounter, UnreadCounts

MEMBER = "m.room.member"
_HERO_COUNT = 5
#: a timeline whose page is hidden history is read again this many times, each twice
#: as far back (limit 10: up to 160 events), to fill it with what the user may see
_HIDDEN_HISTORY_ROUNDS = 5
_NAME_KEYS = [("m.room.name", ""), ("m.room.canonical_alias", "")]


@dataclasses.dataclass(frozen=True)
class SyncContext:
    """One /sync request, as every section sees it."""

    user_id: str
    device_id: str | None
    #: the scope of the device's transaction IDs (None: show none)
    txn_scope: str | None
    since: StreamToken | None
    upto: StreamToken
    sync_filter: SyncFilter
    full_state: bool
    #: senders whose non-state events are hidden (spec: "Ignoring Users")
    ignored: frozenset[str] = frozenset()

    def wanted_in_timeline(self, event: PDU) -> bool:
        if not event.is_state() and event.sender in self.ignored:
            return False
        return self.sync_filter.timeline.matches_pdu(event)

    @property
    def device_key(self) -> tuple[str, str]:
        return self.user_id, self.device_id or ""


@dataclasses.dataclass(frozen=True)
class RoomRange:
    """The room seqs a section covers: timeline events are ``lower < seq <= upper``.

    ``lower`` None: no new events. ``upper_event_id``: the event at ``upper``.
    ``since_event_id``: the room's last event at the ``since`` token (None: none, or
    the client knows nothing of the room).
    """

    lower: int | None
    upper: int | None
    upper_event_id: str | None
    since_event_id: str | None = None


class RoomSections:
    def __init__(self, *, rooms: Any, serializer: EventSerializer, visibility: Any,
                 receipts: Any, unread: UnreadCounter, lazy: LazyMemberCache,
                 out_of_room: Any = None) -> None:
        """``out_of_room.stripped_state(room_id, event_id)`` answers for invites to rooms
        this server does not hold (``store.remote_memberships``), if given."""
        self._rooms = rooms
        self._out_of_room = out_of_room
        self._serializer = serializer
        self._visibility = visibility
        self._receipts = receipts
        self._unread = unread
        self._lazy = lazy

    # -- rooms.join -------------------------------------------------------------------
    async def joined(self, ctx: SyncContext, room_id: str, rng: RoomRange, *,
                     full: bool, joined_throughout: bool, member_event_id: str,
                     ephemeral: list[dict], account_data: list[dict]) -> dict | None:
        """The room's ``JoinedRoom`` object, or None if nothing changed for the client.

        ``full``: the client knows nothing of the room (initial sync, ``full_state``,
        joined since ``since``). ``joined_throughout``: the user was joined all the
        time since ``since``, so every new event is visible without checking.
        """
        actor = await self._rooms.get(room_id)
        timeline = await self._timeline(actor, ctx, rng,
                                        check_visibility=not joined_throughout,
                                        show_current_state=True)
        state = await self._state(actor, ctx, rng, timeline, full)
        if not (full or timeline.events or state or ephemeral or account_data):
            return None
        summary = None
        if full or any(e.type == MEMBER for e in [*timeline.events, *state]):
            summary = await self._summary(actor, ctx.user_id)
        state = await self._lazy_members(actor, ctx, room_id, timeline, state, full,
                                         summary.get("m.heroes", []) if summary else [])
        body: dict[str, Any] = {
            "timeline": await self._timeline_body(actor, ctx, rng, timeline),
            "state": {"events": await self._serialize(actor, ctx, state)},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": account_data},
        }
        unread = await self._unread_counts(actor, ctx, rng, member_event_id)
        body["unread_notifications"] = unread.room
        if ctx.sync_filter.timeline.unread_thread_notifications:
            body["unread_thread_notifications"] = unread.threads
        if summary is not None:
            body["summary"] = summary
        self._remember_members(ctx, room_id, [*state, *timeline.events])
        return body

    # -- rooms.leave ------------------------------------------------------------------
    async def left(self, ctx: SyncContext, room_id: str, rng: RoomRange, *,
                   full: bool, account_data: list[dict]) -> dict | None:
        """The room's ``LeftRoom``: the timeline up to the leave, state as for a
        joined room, but nothing at all from a room the user never joined."""
        actor = await self._rooms.get(room_id)
        viewer = await self._visibility.viewer(actor, ctx.user_id)
        timeline = await self._timeline(actor, ctx, rng, check_visibility=True,
                                         viewer=viewer)
        if rng.lower is not None and rng.upper_event_id is not None and \
                rng.upper_event_id not in {e.event_id for e in timeline.events}:
            # the user's own leave (say, a rejected invite) is news to them even where
            # the history rules hide the room's events from someone never joined
            own = await actor.get_event(rng.upper_event_id)
            if own is not None and ctx.wanted_in_timeline(own) and \
                    ctx.sync_filter.timeline.room_allowed(room_id):
                timeline = Timeline([*timeline.events, own], timeline.limited,
                                    timeline.memberships)
        state: list[PDU] = []
        if viewer.last_join is not None:
            state = await self._state(actor, ctx, rng, timeline, full)
            state = await self._lazy_members(actor, ctx, room_id, timeline, state, full, [])
        self._remember_members(ctx, room_id, [*state, *timeline.events])
        return {
            "timeline": await self._timeline_body(actor, ctx, rng, timeline),
            "state": {"events": await self._serialize(actor, ctx, state)},
            "account_data": {"events": account_data},
        }

    # -- rooms.invite / rooms.knock ---------------------------------------------------
    async def stripped_state(self, room_id: str, member_event_id: str) -> list[dict]:
        """Stripped state for an invite or knock: the room's summary state after the
        membership event, and the membership event itself (spec: "Stripped state")."""
        if self._out_of_room is not None and not self._rooms.known(room_id):
            # an invite over federation to a room we do not hold (yet)
            kept = await self._out_of_room.stripped_state(room_id, member_event_id)
            if kept is not None:
                return kept
        try:
            actor = await self._rooms.get(room_id)
            member = await actor.get_event(member_event_id)
        except NotFound:
            return []
        if member is None:
            return []
        unsigned = member.get("unsigned")
        if isinstance(unsigned, Mapping) and isinstance(
                unsigned.get("invite_room_state"), list):
            # an invite over federation carries the inviting server's view
            return [*unsigned["invite_room_state"], strip_state_event(member)]
        types = [(t, "") for t in STRIPPED_STATE_TYPES if t != MEMBER]
        try:
            state = await actor.state_at(member_event_id, after=True, types=types)
        except NotFound:
            state = {}
        return [*(strip_state_event(e) for e in state.values()), strip_state_event(member)]

    # -- timeline -----------------------------------------------------------------------
    async def _timeline(self, actor: Any, ctx: SyncContext, rng: RoomRange, *,
                        check_visibility: bool, viewer: Any = None,
                        show_current_state: bool = False) -> Timeline:
        """``show_current_state``: events that are current state are shown even from
        hidden history (see ``HistoryVisibility.current_state_among``)."""
        f = ctx.sync_filter
        if rng.lower is None or rng.upper is None or \
                not f.timeline.room_allowed(actor.room_id):
            return Timeline([], False)
        limit = f.timeline_limit
        timeline = await load_timeline(actor, rng.lower, rng.upper, limit,
                                       ctx.wanted_in_timeline)
        if not timeline.events:
            return timeline
        if not check_visibility:
            # all visible; an erased sender's events may still be served pruned. The
            # user was joined throughout: at every event (MSC4115)
            seen = await self._visibility.as_seen(actor, ctx.user_id, timeline.events)
            return Timeline(seen, timeline.limited, {e.event_id: "join" for e in seen})
        load = limit
        for _ in range(_HIDDEN_HISTORY_ROUNDS):
            shown = await self._visibility.current_state_among(
                actor, timeline.events) if show_current_state else ()
            memberships: dict[str, str] = {}
            visible = await self._visibility.filter_events(
                actor, ctx.user_id, timeline.events, viewer, always_include=shown,
                memberships=memberships)
            if len(visible) >= limit or not timeline.limited:
                break
            # hidden history took the page: look further back (as Synapse does)
            load *= 2
            timeline = await load_timeline(actor, rng.lower, rng.upper, load,
                                           ctx.wanted_in_timeline)
        # hidden history is a gap too: the client may paginate into it
        return Timeline(visible[-limit:],
                        timeline.limited or len(visible) != len(timeline.events),
                        memberships)

    async def _timeline_body(self, actor: Any, ctx: SyncContext, rng: RoomRange,
                             timeline: Timeline) -> dict[str, Any]:
        memberships = dict(timeline.memberships or {})
        unknown = [e for e in timeline.events if e.event_id not in memberships]
        if unknown:
            memberships.update(await self._visibility.memberships_at(
                actor, ctx.user_id, unknown))
        body: dict[str, Any] = {
            "events": await self._serialize(actor, ctx, timeline.events,
                                            with_prev_content=True,
                                            memberships=memberships),
            "limited": timeline.limited,
        }
        if timeline.events:
            body["prev_batch"] = await actor.token_before(timeline.events[0].event_id)
        elif ctx.since is not None:
            # nothing new: earlier events are those before the client's own token
            body["prev_batch"] = str(ctx.since)
        return body

    # -- state --------------------------------------------------------------------------
    async def _state(self, actor: Any, ctx: SyncContext, rng: RoomRange,
                     timeline: Timeline, full: bool) -> list[PDU]:
        f = ctx.sync_filter
        if not f.state.room_allowed(actor.room_id):
            return []
        if not full and rng.lower is None:
            return []  # no event since `since`: no state change either
        if not full and not timeline.limited and f.timeline.passes_every_event:
            return []  # every change since `since` is in the timeline
        if rng.upper_event_id is None:
            return []  # the room had no event at the token (cannot happen once joined)
        end = await actor.state_ids_at(rng.upper_event_id, after=True)
        if timeline.events:
            start = await actor.state_ids_at(timeline.events[0].event_id)
        else:
            start = end
        previous: Mapping[Any, str] = {}
        if not full and rng.since_event_id is not None:
            previous = await actor.state_ids_at(rng.since_event_id, after=True)
        known = set(previous.values()) | {e.event_id for e in timeline.events if e.is_state()}
        wanted: dict[str, None] = {}
        for event_id in [*start.values(), *end.values()]:
            if event_id not in known:
                wanted[event_id] = None
        events = await actor.get_events(list(wanted))
        return [events[i] for i in wanted if i in events and f.state.matches_pdu(events[i])]

    async def _lazy_members(self, actor: Any, ctx: SyncContext, room_id: str,
                            timeline: Timeline, state: list[PDU], full: bool,
                            heroes: Iterable[str]) -> list[PDU]:
        """Lazy loading: only member events the client needs to render the timeline
        (its senders), its own (on a full sync) and the heroes'. Member changes of an
        incremental sync's gap are always kept (spec: MUST, even if redundant)."""
        f = ctx.sync_filter
        if not f.lazy_load_members or not f.state.room_allowed(room_id) or \
                not f.state.matches(MEMBER):
            return state
        needed = {e.sender for e in timeline.events} | set(heroes)
        if full:
            needed.add(ctx.user_id)
            state = [e for e in state if e.type != MEMBER or e.state_key in needed]
        have = {e.state_key for e in state if e.type == MEMBER}
        have |= {e.state_key for e in timeline.events if e.type == MEMBER}
        missing = sorted(needed - have)
        if not missing:
            return state
        keys = [(MEMBER, u) for u in missing]
        if timeline.events:
            at_start = await actor.state_at(timeline.events[0].event_id, types=keys)
        else:
            at_start = await actor.current_state(keys)
        since_pos = ctx.since.room if ctx.since is not None and not full else None
        redundant_ok = f.state.include_redundant_members
        for key in keys:
            event = at_start.get(key)
            if event is None:
                continue
            if not redundant_ok and self._lazy.known(ctx.device_key, room_id, key[1],
                                                     event.event_id, since_pos):
                continue
            state.append(event)
        return state

    def _remember_members(self, ctx: SyncContext, room_id: str, events: list[PDU]) -> None:
        if ctx.sync_filter.lazy_load_members:
            self._lazy.remember(ctx.device_key, room_id,
                                [(e.state_key, e.event_id) for e in events
                                 if e.type == MEMBER and e.state_key], ctx.upto.room)

    # -- summary and counts -----------------------------------------------------------
    async def _summary(self, actor: Any, user_id: str) -> dict[str, Any]:
        """``m.joined_member_count``, ``m.invited_member_count`` and, for a room
        without a name or canonical alias, ``m.heroes`` (first 5 other joined or
        invited members in stream order; else those who left)."""
        members = await actor.members()
        by_state = {"join": 0, "invite": 0}
        for event in members.values():
            if event.membership in by_state:
                by_state[event.membership] += 1
        summary: dict[str, Any] = {"m.joined_member_count": by_state["join"],
                                   "m.invited_member_count": by_state["invite"]}
        names = await actor.current_state(_NAME_KEYS)
        if not any(e.content.get("name") or e.content.get("alias") for e in names.values()):
            others = sorted((e for u, e in members.items() if u != user_id), key=seq_of)
            heroes = [e.state_key for e in others if e.membership in ("join", "invite")]
            if not heroes:
                heroes = [e.state_key for e in others if e.membership in ("leave", "ban")]
            summary["m.heroes"] = heroes[:_HERO_COUNT]
        return summary

    async def _unread_counts(self, actor: Any, ctx: SyncContext, rng: RoomRange,
                             member_event_id: str) -> UnreadCounts:
        read_seq = 0
        for receipt_type in ("m.read", "m.read.private"):
            receipt = await self._receipts.get_receipt(actor.room_id, receipt_type,
                                                       ctx.user_id)
            event = await actor.get_event(receipt.event_id) if receipt else None
            if event is not None:
                read_seq = max(read_seq, seq_of(event))
        if not read_seq:
            member = await actor.get_event(member_event_id)
            read_seq = seq_of(member) if member is not None else 0
        upper = rng.upper if rng.upper is not None else await actor.last_seq()
        return await self._unread.counts(
            actor, ctx.user_id, read_seq, upper,
            threads=ctx.sync_filter.timeline.unread_thread_notifications)

    async def _serialize(self, actor: Any, ctx: SyncContext, events: list[PDU], *,
                         with_prev_content: bool = False,
                         memberships: Mapping[str, str] | None = None
                         ) -> list[dict[str, Any]]:
        return await self._serializer.serialize(
            actor, events, user_id=ctx.user_id, scope=ctx.txn_scope,
            sync_filter=ctx.sync_filter, with_prev_content=with_prev_content,
            memberships=memberships)
