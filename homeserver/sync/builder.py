"""The /sync response builder (spec: Client-Server API, "Syncing", GET /sync), shared by
``GET /sync`` and the WebSocket stream.

:meth:`SyncBuilder.build` answers "what changed for this device between ``since``
and now" without waiting; :class:`homeserver.sync.service.SyncService` adds the
long-poll. The token it returns holds, per stream, the position the answer covers:

- rooms: the memberships index says which rooms the user is in; the global room
  stream says which of them changed after ``since`` and up to which room seq (so
  each room's timeline is cut exactly at the token, see ``timeline.py``);
- account data and tags, receipts, presence, to-device, device lists: their stores
  answer "changed in (since, upto]";
- typing: the in-memory typing service.

Sections follow sync.yaml: ``rooms.{join,invite,leave,knock}``, ``presence``,
``account_data``, ``to_device`` (delivered here, deleted once the device syncs
with a later token), ``device_lists`` (``changed``/``left``, see
``homeserver.e2ee.device_lists``), ``device_one_time_keys_count`` and
``device_unused_fallback_key_types`` (spec: "Extensions to sync" of end-to-end
encryption; for the syncing device, from ``store.e2e_keys``' in-memory counts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from twisted.logger import Logger

from homeserver.e2ee.device_lists import DeviceListChanges
from homeserver.errors import NotFound
from homeserver.store.streams import Membership, RoomChange
from homeserver.sync.filters import SyncFilter
from homeserver.sync.presence import OFFLINE, UserPresence
from homeserver.sync.room_sections import RoomRange, RoomSections, SyncContext
from homeserver.sync.tokens import StreamToken

log = Logger()

ALL_MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")
#: to-device messages per response (spec: "100 messages is recommended")
TO_DEVICE_LIMIT = 100


@dataclasses.dataclass(frozen=True)
class SyncResult:
    body: dict[str, Any]
    next_batch: StreamToken
    #: nothing for the client: a long-poll keeps waiting
    empty: bool
    #: the rooms the user is joined to (what a long-poll watches)
    joined_room_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    txn_scope: str | None
    since: StreamToken | None
    sync_filter: SyncFilter
    full_state: bool = False
    #: ``since`` acknowledges the to-device messages up to it (False: the WebSocket
    #: stream, whose client acknowledges explicitly)
    ack_to_device: bool = True


_IGNORED_CACHE_SIZE = 50_000


class SyncBuilder:
    def __init__(self, *, store: Any, rooms: Any, sections: RoomSections, typing: Any,
                 presence: Any, now_ms: Any, push_rules: Any = None) -> None:
        """``push_rules``: the PushRulesService, whose ruleset an initial sync sends
        as ``m.push_rules`` to a user who never changed their rules."""
        self._store = store
        self._push_rules = push_rules
        self._rooms = rooms
        self._sections = sections
        self._typing = typing
        self._presence = presence
        self._now_ms = now_ms
        #: (user, device) → to-device position already deleted up to
        self._acked_to_device: dict[tuple[str, str], int] = {}
        #: user → (account-data position read at, ignored users)
        self._ignored_cache: dict[str, tuple[int, frozenset[str]]] = {}
        self._device_list_changes = DeviceListChanges(store)

    async def build(self, req: SyncRequest) -> SyncResult:
        store, since, f = self._store, req.since, req.sync_filter
        # positions first: every membership up to them is then in the index
        upto = await self._current_token()
        if since is not None:
            since = since.capped_at(upto)  # a position this server lost (see there)
        # a membership newer than the token is the next sync's news
        memberships = [m for m in await store.streams.get_rooms_for_user(
            req.user_id, ALL_MEMBERSHIPS)
            if f.room_allowed(m.room_id) and m.stream_pos <= upto.room]
        changed: dict[str, RoomChange] = {}
        if since is not None:
            changed = await store.sync_reads.rooms_changed_between(
                since.room, upto.room, [m.room_id for m in memberships
                                        if m.membership == "join"
                                        or m.stream_pos > since.room])
        ctx = SyncContext(req.user_id, req.device_id, req.txn_scope, since, upto, f,
                          req.full_state,
                          await self._ignored_users(req.user_id, upto.account_data))

        to_device, upto = await self._to_device(ctx, upto, req.ack_to_device)
        ctx = dataclasses.replace(ctx, upto=upto)
        joined = [m for m in memberships if m.membership == "join"]
        since_points = {}
        if since is not None:
            since_points = await store.sync_reads.room_points(
                [m.room_id for m in memberships if m.room_id in changed], since.room)
        newly_joined = {m.room_id for m in joined if await self._newly_member(
            ctx, m, since_points)}
        account_data, room_account_data = await self._account_data(ctx, newly_joined)
        ephemeral = await self._ephemeral(ctx, [m.room_id for m in joined], newly_joined)

        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {},
                                            "knock": {}}
        included = [m for m in joined if since is None or req.full_state
                    or m.room_id in changed or m.room_id in ephemeral
                    or m.room_id in room_account_data]
        upper_points = await store.sync_reads.room_points(
            [m.room_id for m in included], upto.room)
        # the unread counts of every included room start from the user's read receipt
        await store.receipts.prefetch([m.room_id for m in included],
                                      ("m.read", "m.read.private"), req.user_id)
        for m in included:
            change, point = changed.get(m.room_id), upper_points.get(m.room_id)
            full = since is None or req.full_state or m.room_id in newly_joined
            since_point = since_points.get(m.room_id)
            if since is None or m.room_id in newly_joined:
                lower = 0
            else:
                lower = change.min_room_seq - 1 if change is not None else None
            rng = RoomRange(lower, point.room_seq if point else None,
                            point.event_id if point else None,
                            since_point.event_id if since_point else None)
            section = await self._guard(m.room_id, self._sections.joined(
                ctx, m.room_id, rng, full=full,
                joined_throughout=since is not None and m.stream_pos <= since.room,
                member_event_id=m.event_id, ephemeral=ephemeral.get(m.room_id, []),
                account_data=room_account_data.get(m.room_id, [])))
            if section is not None:
                rooms["join"][m.room_id] = section

        for m in memberships:
            if m.membership in ("leave", "ban"):
                section = await self._guard(m.room_id, self._left(
                    ctx, m, changed.get(m.room_id), since_points,
                    room_account_data.get(m.room_id, [])))
                if section is not None:
                    rooms["leave"][m.room_id] = section
            elif m.membership in ("invite", "knock") and \
                    (since is None or m.stream_pos > since.room):
                stripped = await self._sections.stripped_state(m.room_id, m.event_id)
                if stripped and stripped[-1].get("sender") in ctx.ignored:
                    continue  # spec: invites from ignored users are not sent
                key = "invite_state" if m.membership == "invite" else "knock_state"
                rooms[m.membership][m.room_id] = {key: {"events": stripped}}

        # the user's own presence and devices concern them too, rooms or not
        shared: list[set[str]] = []

        async def sharing() -> set[str]:
            # asked for only when the presence or device-list stream moved
            if not shared:
                shared.append(await store.streams.users_sharing_a_room_with(req.user_id)
                              | {req.user_id})
            return shared[0]

        presence = await self._presence_events(ctx, sharing, newly_joined)
        device_lists = await self._device_lists(ctx, sharing)
        global_account_data = account_data
        body = {
            "next_batch": str(upto),
            "rooms": rooms,
            "presence": {"events": presence},
            "account_data": {"events": global_account_data},
            "to_device": {"events": to_device},
            "device_lists": device_lists,
        }
        if req.device_id is not None:
            counts = await store.e2e_keys.key_counts(req.user_id, req.device_id)
            body["device_one_time_keys_count"] = dict(counts.one_time_keys)
            body["device_unused_fallback_key_types"] = list(
                counts.unused_fallback_key_types)
            # the name clients read before v1.2 (Synapse still sends both)
            body["org.matrix.msc2732.device_unused_fallback_key_types"] = list(
                counts.unused_fallback_key_types)
        empty = not (any(rooms.values()) or presence or global_account_data or to_device
                     or device_lists["changed"] or device_lists["left"])
        return SyncResult(body, upto, empty, tuple(m.room_id for m in joined))

    async def unchanged_since(self, req: SyncRequest) -> bool:
        """True if an answer to ``req`` built now would certainly be empty: ``since``
        is the current position of every stream (nothing was written since; a long-poll
        usually comes back with the token it was just given) and no to-device
        messages wait to be deleted as received. A long-poll then waits without
        building that empty answer (~70 µs of the reactor per /sync, see
        bench/README.md)."""
        since = req.since
        if since is None or req.full_state:
            return False
        if req.ack_to_device and req.device_id is not None and since.to_device > \
                self._acked_to_device.get((req.user_id, req.device_id), 0):
            return False
        return since == await self._current_token()

    async def _current_token(self) -> StreamToken:
        """Every stream's current position."""
        positions = await self._store.current_positions()
        return StreamToken.from_positions(positions, typing=self._typing.position)

    async def _ignored_users(self, user_id: str, position: int) -> frozenset[str]:
        """``m.ignored_user_list`` (spec: "Ignoring Users"), re-read only when the
        account-data stream has moved since it was last read for this user."""
        cached = self._ignored_cache.get(user_id)
        if cached is not None and cached[0] >= position:
            return cached[1]
        content = await self._store.account_data.get_account_data(
            user_id, "m.ignored_user_list")
        ignored = content.get("ignored_users") if isinstance(content, dict) else None
        result = frozenset(ignored) if isinstance(ignored, dict) else frozenset()
        self._ignored_cache[user_id] = (position, result)
        while len(self._ignored_cache) > _IGNORED_CACHE_SIZE:
            self._ignored_cache.pop(next(iter(self._ignored_cache)))
        return result

    async def _guard(self, room_id: str, section) -> dict | None:
        """A room that vanished mid-sync (e.g. purged) is left out, not a 500."""
        try:
            return await section
        except NotFound:
            log.info("sync: room {room_id} not found; left out", room_id=room_id)
            return None

    async def _membership_at(self, room_id: str, user_id: str,
                             event_id: str) -> str | None:
        actor = await self._rooms.get(room_id)
        key = ("m.room.member", user_id)
        try:
            state = await actor.state_at(event_id, after=True, types=[key])
        except NotFound:
            return None
        member = state.get(key)
        return member.membership if member is not None else None

    async def _newly_member(self, ctx: SyncContext, m: Membership,
                            since_points: dict) -> bool:
        """True if the user's current membership was not theirs at ``since``."""
        if ctx.since is None or m.stream_pos <= ctx.since.room:
            return False
        point = since_points.get(m.room_id)
        if point is None:
            return True
        return await self._membership_at(m.room_id, ctx.user_id,
                                         point.event_id) != m.membership

    async def _left(self, ctx: SyncContext, m: Membership, change: RoomChange | None,
                    since_points: dict, account_data: list[dict]) -> dict | None:
        since, f = ctx.since, ctx.sync_filter
        newly_left = since is not None and m.stream_pos > since.room
        if not newly_left and not (f.include_leave and (since is None or ctx.full_state)):
            return None
        actor = await self._rooms.get(m.room_id)
        leave = await actor.get_event(m.event_id)
        if leave is None:
            return None
        if since is None:
            lower = 0
        else:
            lower = change.min_room_seq - 1 if change is not None and newly_left else None
        point = since_points.get(m.room_id) if newly_left else None
        was_joined = point is not None and await self._membership_at(
            m.room_id, ctx.user_id, point.event_id) == "join"
        rng = RoomRange(lower, leave.internal_metadata.get("seq"), leave.event_id,
                        point.event_id if point is not None else None)
        full = since is None or ctx.full_state or not was_joined
        return await self._sections.left(ctx, m.room_id, rng, full=full,
                                         account_data=account_data)

    # -- ephemeral --------------------------------------------------------------------
    async def _ephemeral(self, ctx: SyncContext, joined: list[str],
                         newly_joined: set[str]) -> dict[str, list[dict]]:
        f, since = ctx.sync_filter.ephemeral, ctx.since
        rooms = [r for r in joined if f.room_allowed(r)]
        result: dict[str, list[dict]] = {}
        if f.matches("m.typing"):
            for room_id in self._typing.rooms_changed(
                    since.typing if since is not None else None, rooms, ctx.upto.typing):
                result.setdefault(room_id, []).append(self._typing.event_for(room_id))
            for room_id in newly_joined:
                if room_id in rooms and room_id not in result and \
                        self._typing.typing_users(room_id):
                    result[room_id] = [self._typing.event_for(room_id)]
        receipts_moved = since is None or newly_joined or since.receipts < ctx.upto.receipts
        if f.matches("m.receipt") and receipts_moved:
            receipts = await self._store.receipts.get_receipts_since(
                since.receipts if since is not None else 0, ctx.upto.receipts,
                room_ids=rooms)
            if since is not None and newly_joined:
                receipts += await self._store.receipts.get_receipts_since(
                    0, since.receipts, room_ids=[r for r in rooms if r in newly_joined])
            by_room: dict[str, dict[str, Any]] = {}
            for r in receipts:
                if r.receipt_type == "m.read.private" and r.user_id != ctx.user_id:
                    continue  # spec: MUST NOT be sent to anyone but its sender
                if not f.matches("m.receipt", r.user_id):
                    continue
                content = by_room.setdefault(r.room_id, {})
                content.setdefault(r.event_id, {}).setdefault(
                    r.receipt_type, {})[r.user_id] = dict(r.data)
            for room_id, content in by_room.items():
                result.setdefault(room_id, []).append({"type": "m.receipt",
                                                       "content": content})
        return result

    # -- account data -----------------------------------------------------------------
    async def _account_data(self, ctx: SyncContext, newly_joined: set[str]
                            ) -> tuple[list[dict], dict[str, list[dict]]]:
        store, since, f = self._store.account_data, ctx.since, ctx.sync_filter
        if since is not None and not newly_joined and \
                since.account_data >= ctx.upto.account_data:
            return [], {}  # the stream has not moved: nothing can have changed
        start = since.account_data if since is not None else 0
        snapshot = await store.get_all_account_data(ctx.user_id, start,
                                                    ctx.upto.account_data)
        tags = await store.get_tags(ctx.user_id, start, ctx.upto.account_data)
        room_data = {r: dict(d) for r, d in snapshot.rooms.items()}
        if since is not None and newly_joined:
            # a room joined (again) since: its account data from before is news to it
            older = await store.get_all_account_data(ctx.user_id, 0, start)
            older_tags = await store.get_tags(ctx.user_id, 0, start)
            for room_id in newly_joined:
                for data_type, content in older.rooms.get(room_id, {}).items():
                    room_data.setdefault(room_id, {}).setdefault(data_type, content)
                if room_id in older_tags and room_id not in tags:
                    tags[room_id] = older_tags[room_id]
        for room_id, room_tags in tags.items():
            room_data.setdefault(room_id, {})["m.tag"] = {"tags": room_tags}
        if since is None and self._push_rules is not None and \
                "m.push_rules" not in snapshot.global_data:
            # the defaults are account data too (spec: "Push Rules: Events"); they
            # are stored only once the user changes a rule
            snapshot.global_data["m.push_rules"] = \
                await self._push_rules.account_data(ctx.user_id)
        global_events = [{"type": t, "content": c} for t, c in snapshot.global_data.items()
                         if f.account_data.matches(t)]
        rooms: dict[str, list[dict]] = {}
        for room_id, data in room_data.items():
            if not f.room_allowed(room_id) or not f.room_account_data.room_allowed(room_id):
                continue
            events = [{"type": t, "content": c} for t, c in data.items()
                      if f.room_account_data.matches(t)]
            if events:
                rooms[room_id] = events[:f.room_account_data.filter_limit(len(events))]
        limit = f.account_data.filter_limit(len(global_events))
        return global_events[:limit], rooms

    # -- presence, to-device, device lists --------------------------------------------
    async def _presence_events(self, ctx: SyncContext, sharing,
                               newly_joined: Iterable[str]) -> list[dict]:
        f = ctx.sync_filter.presence
        if not self._presence.enabled or not f.matches("m.presence"):
            return []
        store, since = self._store.presence, ctx.since
        newly_joined = list(newly_joined)
        if since is not None and not newly_joined and since.presence >= ctx.upto.presence:
            return []
        sharing = await sharing()
        if since is None:
            rows = list((await store.get_presence_for_users(sharing)).values())
        else:
            rows = await store.get_presence_changes(since.presence, ctx.upto.presence,
                                                    user_ids=sharing)
            newcomers: set[str] = set()
            for room_id in newly_joined:
                newcomers |= set(await self._store.streams.get_room_members(room_id))
            if newcomers:
                current = await store.get_presence_for_users(newcomers)
                rows += [r for r in current.values() if r.state != OFFLINE]
        latest = {}
        for row in rows:
            if since is None and row.state == OFFLINE:
                continue  # an initial sync lists only who is around
            if f.matches("m.presence", row.user_id):
                latest[row.user_id] = row
        now = self._now_ms()
        events = [UserPresence(r.user_id, r.state, r.last_active_ts, r.status_msg,
                               bool(r.currently_active)).event(now)
                  for r in latest.values()]
        return events[:f.filter_limit(len(events))]

    async def _to_device(self, ctx: SyncContext, upto: StreamToken, ack: bool
                         ) -> tuple[list[dict], StreamToken]:
        """Pending to-device messages for this device; those up to ``since`` were
        received (the client is syncing with a later token) and are deleted first."""
        if ctx.device_id is None:
            return [], upto
        store, key = self._store.to_device, (ctx.user_id, ctx.device_id)
        since = ctx.since.to_device if ctx.since is not None else 0
        if ack and since > self._acked_to_device.get(key, 0):
            await store.delete_messages_upto(ctx.user_id, ctx.device_id, since)
            self._acked_to_device[key] = since
        if since >= upto.to_device:
            return [], upto.replace(to_device=since)  # nothing new for anyone
        messages, pos = await store.get_messages(ctx.user_id, ctx.device_id, since,
                                                 upto.to_device, TO_DEVICE_LIMIT)
        return [dict(m) for m in messages], upto.replace(to_device=max(pos, since))

    async def _device_lists(self, ctx: SyncContext, sharing) -> dict[str, list]:
        if ctx.since is None:
            return {"changed": [], "left": []}  # an initial sync: the client asks all
        delta = await self._device_list_changes.between(ctx.user_id, ctx.since,
                                                        ctx.upto, sharing)
        return delta.to_json()
