"""The legacy event stream and initial sync: ``GET /events``, ``GET /initialSync``,
``GET /rooms/{roomId}/initialSync`` (spec: Client-Server API, "Syncing" → "Legacy
endpoints"; data/api/client-server/old_sync.yaml, deprecated but still in the spec and
used by test tools such as sytest).

Built on the /sync machinery rather than beside it:

- ``/events`` is an incremental /sync (same long-poll, same tokens: ``end`` is a
  :class:`StreamToken`, so ``/events``, ``/sync`` and ``/messages`` tokens mix) whose
  answer is flattened into one chunk: room events, typing and receipts (with their
  ``room_id``), presence and account data. A ``room_id`` the user has not joined is
  read by peeking, if the room is world-readable (spec: "Room Previews"), from the
  global room stream.
- ``/initialSync`` and ``/rooms/{roomId}/initialSync`` assemble each room from
  ``/messages`` (newest first, returned oldest first), the current (or, for a room
  left, the then) state, receipts, presence and account data.

Events come in the v1 client format Synapse gives these endpoints: with ``room_id``,
``user_id`` (the sender) and ``unsigned``'s ``age`` / ``prev_content`` /
``replaces_state`` also at the top level; presence content carries ``user_id``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer

from homeserver.errors import Forbidden, GuestAccessForbidden
from homeserver.rooms.rules.pagination import TopologicalToken
from homeserver.rooms.rules.transactions import scope_of
from homeserver.sync.builder import SyncRequest
from homeserver.sync.filters import MAX_TIMELINE_LIMIT, parse_filter
from homeserver.sync.presence import OFFLINE, UserPresence
from homeserver.sync.service import Cancellation
from homeserver.sync.timeline import load_timeline
from homeserver.sync.tokens import StreamToken

#: messages per room in an initial sync when the client gives no limit (Synapse's)
DEFAULT_INITIAL_LIMIT = 10
_V1_COPIED = ("age", "redacted_because", "replaces_state", "prev_content")


def v1_event(event: dict[str, Any], room_id: str | None = None) -> dict[str, Any]:
    """A client event in the legacy (v1) shape: ``room_id``, ``user_id`` = sender, and
    some ``unsigned`` keys copied to the top level."""
    out = dict(event)
    if room_id is not None:
        out["room_id"] = room_id
    if "sender" in out:
        out["user_id"] = out["sender"]
    unsigned = out.get("unsigned") or {}
    for key in _V1_COPIED:
        if key in unsigned:
            out[key] = unsigned[key]
    return out


def v1_presence(event: dict[str, Any]) -> dict[str, Any]:
    """A presence event with ``content.user_id`` (the legacy shape)."""
    return {**event, "content": {**event["content"], "user_id": event["sender"]}}


class LegacySync:
    def __init__(self, *, sync_service: Any, store: Any, rooms: Any, room_service: Any,
                 typing: Any, presence: Any, notifier: Any,
                 now_ms: Callable[[], int]) -> None:
        self._sync = sync_service
        self._store = store
        self._rooms = rooms
        self._history = room_service.history
        self._visibility = room_service.visibility
        self._serializer = room_service.serializer
        self._typing = typing
        self._presence = presence
        self._notifier = notifier
        self._now_ms = now_ms

    async def current_token(self) -> StreamToken:
        positions = await self._store.current_positions()
        return StreamToken.from_positions(positions, typing=self._typing.position)

    # -- GET /events --------------------------------------------------------------------
    async def events(self, requester: Any, *, from_token: StreamToken | None,
                     timeout_ms: int, room_id: str | None,
                     cancellation: Cancellation) -> dict[str, Any] | None:
        """``{chunk, start, end}`` of what happened after ``from_token`` (now if None),
        waiting up to ``timeout_ms`` for something; None if the client went away."""
        if room_id is None and requester.is_guest:
            # Synapse's rule: a guest only ever peeks into one room
            raise GuestAccessForbidden("Guest users must give a room_id")
        start = from_token if from_token is not None else await self.current_token()
        if room_id is not None:
            actor = await self._rooms.get(room_id)
            access = await self._visibility.access(actor, requester.user_id)
            if not access.is_joined:
                if not access.world_readable:
                    raise Forbidden("You are not in this room and it is not "
                                    "world-readable")
                return await self._peek(requester, actor, start, timeout_ms, cancellation)
        room_filter: dict[str, Any] = {"timeline": {"limit": MAX_TIMELINE_LIMIT},
                                       "state": {"lazy_load_members": False}}
        if room_id is not None:
            room_filter["rooms"] = [room_id]
        body = await self._sync.sync(
            SyncRequest(requester.user_id, requester.device_id, scope_of(requester), start,
                        parse_filter({"room": room_filter}), ack_to_device=False),
            timeout_ms=timeout_ms, cancellation=cancellation)
        if body is None:
            return None
        chunk = await self._flatten(requester.user_id, body, room_id is None)
        return {"chunk": chunk, "start": str(start), "end": body["next_batch"]}

    async def _flatten(self, user_id: str, body: dict[str, Any],
                       everything: bool) -> list[dict[str, Any]]:
        rooms = body.get("rooms", {})
        chunk: list[dict[str, Any]] = []
        if everything:
            chunk += [v1_presence(e) for e in body.get("presence", {}).get("events", [])]
            chunk += body.get("account_data", {}).get("events", [])
        for room_id in rooms.get("invite", {}):
            invite = await self._invite_event(user_id, room_id)
            if invite is not None:
                chunk.append(invite)
        for kind in ("join", "leave"):
            for room_id, section in rooms.get(kind, {}).items():
                for key in ("timeline", "ephemeral", "account_data"):
                    chunk += [v1_event(e, room_id)
                              for e in section.get(key, {}).get("events", [])]
        return chunk

    async def _invite_event(self, user_id: str, room_id: str) -> dict[str, Any] | None:
        membership = await self._store.streams.get_membership(user_id, room_id)
        if membership is None or membership.membership != "invite":
            return None
        actor = await self._rooms.get(room_id)
        event = await actor.get_event(membership.event_id)
        if event is None:
            return None
        (serialized,) = await self._serializer.serialize(actor, [event], user_id=user_id)
        return v1_event(serialized)

    async def _peek(self, requester: Any, actor: Any, start: StreamToken,
                    timeout_ms: int, cancellation: Cancellation) -> dict[str, Any] | None:
        """A world-readable room the user is not in: what a member would see of it
        after ``start`` (events, typing, receipts, its members' presence), waiting for
        something as /sync waits."""
        deadline = self._now_ms() + timeout_ms
        while True:
            upto = await self.current_token()
            remaining = max(0, deadline - self._now_ms())
            waiter = self._notifier.wait(requester.user_id, [actor.room_id], remaining)
            chunk = await self._peeked(actor, requester, start, upto)
            if chunk or remaining <= 0:
                _discard(waiter)
                return {"chunk": chunk, "start": str(start), "end": str(upto)}
            cancellation.watch(waiter)
            try:
                woken = await waiter
            except defer.CancelledError:
                return None
            if not woken:
                return {"chunk": [], "start": str(start), "end": str(upto)}

    async def _peeked(self, actor: Any, requester: Any, start: StreamToken,
                      upto: StreamToken) -> list[dict[str, Any]]:
        room_id = actor.room_id
        chunk = await self._room_events_between(actor, requester, start.room, upto.room)
        if self._typing.rooms_changed(start.typing, [room_id], upto.typing):
            chunk.append({**self._typing.event_for(room_id), "room_id": room_id})
        if start.receipts < upto.receipts:
            chunk += await self._receipts([room_id], requester.user_id,
                                          since=start.receipts, upto=upto.receipts)
        if self._presence.enabled and start.presence < upto.presence:
            members = await self._store.streams.get_room_members(room_id)
            rows = await self._store.presence.get_presence_changes(
                start.presence, upto.presence, user_ids=set(members))
            chunk += self._presence_rows(rows)
        return chunk

    async def _room_events_between(self, actor: Any, requester: Any, since: int,
                                   upto: int) -> list[dict[str, Any]]:
        reads = self._store.sync_reads
        upper = (await reads.room_points([actor.room_id], upto)).get(actor.room_id)
        if upper is None:
            return []
        lower = (await reads.room_points([actor.room_id], since)).get(actor.room_id)
        timeline = await load_timeline(actor, lower.room_seq if lower else 0,
                                       upper.room_seq, MAX_TIMELINE_LIMIT, lambda e: True)
        visible = await self._visibility.filter_events(actor, requester.user_id,
                                                       timeline.events)
        return [v1_event(e) for e in await self._serializer.serialize(
            actor, visible, user_id=requester.user_id, scope=scope_of(requester))]

    # -- GET /initialSync ---------------------------------------------------------------
    async def initial_sync(self, requester: Any, *, limit: int,
                           archived: bool) -> dict[str, Any]:
        # a sync like /sync's: it marks the user active (so they see themselves online)
        await self._presence.connected(requester.user_id, None)
        try:
            return await self._initial_sync(requester, limit, archived)
        finally:
            self._presence.disconnected(requester.user_id)

    async def _initial_sync(self, requester: Any, limit: int,
                            archived: bool) -> dict[str, Any]:
        user_id = requester.user_id
        now = await self.current_token()
        wanted = ("join", "invite", "leave", "ban") if archived else ("join", "invite")
        memberships = [m for m in await self._store.streams.get_rooms_for_user(
            user_id, wanted) if m.stream_pos <= now.room and not m.forgotten]
        account_data = await self._store.account_data.get_all_account_data(user_id)
        tags = await self._store.account_data.get_tags(user_id)
        rooms = []
        for m in memberships:
            room: dict[str, Any] = {"room_id": m.room_id, "membership": m.membership,
                                    "visibility": await self._directory_visibility(
                                        m.room_id)}
            if m.membership == "invite":
                invite = await self._invite_event(user_id, m.room_id)
                if invite is not None:
                    room["invite"] = invite
                    room["inviter"] = invite["sender"]
            else:
                room.update(await self._room_body(
                    requester, m.room_id, limit, now,
                    account_data.rooms.get(m.room_id, {}), tags.get(m.room_id)))
            rooms.append(room)
        sharing = await self._store.streams.users_sharing_a_room_with(user_id)
        return {
            "end": str(now),
            "rooms": rooms,
            "presence": await self._presence_events(sharing | {user_id}, user_id),
            "account_data": [{"type": t, "content": c}
                             for t, c in account_data.global_data.items()],
            "receipts": await self._receipts([m.room_id for m in memberships
                                              if m.membership == "join"], user_id),
        }

    # -- GET /rooms/{roomId}/initialSync ---------------------------------------------
    async def room_initial_sync(self, requester: Any, room_id: str, *,
                                limit: int) -> dict[str, Any]:
        user_id = requester.user_id
        actor = await self._rooms.get(room_id)
        access = await self._visibility.access(actor, user_id)  # 403 if not readable
        now = await self.current_token()
        room_data = await self._store.account_data.get_all_account_data(user_id)
        tags = await self._store.account_data.get_tags(user_id)
        body: dict[str, Any] = {"room_id": room_id,
                                "visibility": await self._directory_visibility(room_id)}
        if access.membership is not None:
            body["membership"] = access.membership
        body.update(await self._room_body(requester, room_id, limit, now,
                                          room_data.rooms.get(room_id, {}),
                                          tags.get(room_id)))
        members = [] if access.left_event is not None else \
            await self._store.streams.get_room_members(room_id)
        body["presence"] = await self._presence_events(members, user_id,
                                                       include_offline=True)
        body["receipts"] = [] if access.left_event is not None else \
            await self._receipts([room_id], user_id)
        return body

    # -- parts --------------------------------------------------------------------------
    async def _room_body(self, requester: Any, room_id: str, limit: int,
                         now: StreamToken, room_account_data: dict[str, Any],
                         room_tags: dict[str, Any] | None) -> dict[str, Any]:
        user_id = requester.user_id
        page = await self._history.messages(room_id, user_id, direction="b", limit=limit,
                                            scope=scope_of(requester))
        chunk = [v1_event(e, room_id) for e in reversed(page["chunk"])]
        # end: the stream now, from which /events goes on; start: where /messages
        # goes back from (the room's beginning once the chunk reaches it)
        start = page.get("end", str(TopologicalToken.START))  # type: ignore[attr-defined]
        messages = {"chunk": chunk, "start": start, "end": str(now)}
        state = [v1_event(e, room_id) for e in await self._history.state(room_id, user_id)]
        account_data = [{"type": t, "content": c} for t, c in room_account_data.items()]
        if room_tags is not None:  # first, as Synapse lists it
            account_data.insert(0, {"type": "m.tag", "content": {"tags": room_tags}})
        return {"messages": messages, "state": state, "account_data": account_data}

    async def _directory_visibility(self, room_id: str) -> str:
        info = await self._store.rooms.get_room(room_id)
        return "public" if info is not None and info.is_public else "private"

    async def _presence_events(self, user_ids: Iterable[str], own_user_id: str, *,
                               include_offline: bool = False) -> list[dict[str, Any]]:
        """Presence of ``user_ids``: those around (and the asker), or, for a room's
        members (``include_offline``, as Synapse), everyone, offline by default."""
        if not self._presence.enabled:
            return []
        user_ids = set(user_ids)
        rows: dict[str, Any] = dict(await self._store.presence.get_presence_for_users(
            user_ids))
        if include_offline:
            for user_id in user_ids - set(rows):
                rows[user_id] = UserPresence(user_id)
        return self._presence_rows([r for r in rows.values() if include_offline
                                    or r.state != OFFLINE or r.user_id == own_user_id])

    def _presence_rows(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        now = self._now_ms()
        latest = {r.user_id: r for r in rows}  # changes come oldest first
        return [v1_presence(UserPresence(r.user_id, r.state, r.last_active_ts,
                                         r.status_msg, bool(r.currently_active)).event(now))
                for r in latest.values()]

    async def _receipts(self, room_ids: list[str], user_id: str, *, since: int = 0,
                        upto: int | None = None) -> list[dict[str, Any]]:
        by_room: dict[str, dict[str, Any]] = {}
        for r in await self._store.receipts.get_receipts_since(since, upto,
                                                               room_ids=room_ids):
            if r.receipt_type == "m.read.private" and r.user_id != user_id:
                continue  # spec: seen by its sender only
            content = by_room.setdefault(r.room_id, {})
            content.setdefault(r.event_id, {}).setdefault(
                r.receipt_type, {})[r.user_id] = dict(r.data)
        return [{"type": "m.receipt", "room_id": room_id, "content": content}
                for room_id, content in by_room.items()]


def _discard(waiter: defer.Deferred) -> None:
    waiter.addErrback(lambda f: f.trap(defer.CancelledError))
    waiter.cancel()
