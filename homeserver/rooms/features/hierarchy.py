"""The space hierarchy: ``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` (spec:
Client-Server API, "Spaces" → "Client behaviour"; space_hierarchy.yaml; added in v1.2).

A space lists its children as ``m.space.child`` state events (state key: the child's
room ID; ``content.via`` must be a non-empty list, else the link is void). The walk is
depth first from the requested room, children in the spec's order (``order`` string
if valid, then the link's ``origin_server_ts``, then the room ID); a room appears once
however often it is linked.

Rooms this server is not in (we hold no copy, or no local user is joined or invited, so
our copy may be stale) are asked of other servers through a ``RemoteSpaces``
collaborator (``federation/remote_hierarchy.py``; spec: "Spaces" → "Server behaviour"):
``GET /_matrix/federation/v1/hierarchy/{roomId}`` of the servers in the linking
``m.space.child`` event's ``via`` (for the requested room itself: its ID's server and
the inviter's server of an invite our user holds). Its answer describes the room, its
``children_state`` and the children the asking server may see; a child described
there that is not a space (or sits at ``max_depth``) is shown from that description
without asking again, ``inaccessible_children`` are skipped. A remote room is shown to
the user as Synapse does: its join rule is ``public``/``knock``/``knock_restricted`` or
it is world-readable, or the user is joined to one of its ``allowed_room_ids``, or holds
a membership of it here (joined or invited). ``allowed_room_ids`` is not passed on to
clients. If no server answers, a room we do hold is described from our copy.

A room is shown if the user may preview it, as Synapse decides: the user is joined or
invited, the room is world-readable, or its join rule is ``public`` / ``knock``, or
``restricted`` / ``knock_restricted`` with the user joined to one of the allowed
rooms. The requested room must pass this too (else 403). Children are walked only for
rooms whose type is ``m.space``; other rooms come with an empty ``children_state``.

For another server (Server-Server API, "Spaces": ``GET /hierarchy/{roomId}``) the
answer is one level deep: the room, its accessible children, and the IDs of those the
server may not see. A server may see a room that is world-readable, has a ``public`` or
``knock`` join rule, has one of its users joined, or is ``restricted`` /
``knock_restricted`` (then with ``allowed_room_ids`` so the server filters for its
users, as the spec asks).

Pagination: the walk is deterministic, so ``next_batch`` is an offset into it, bound
to the request's room, ``max_depth`` and ``suggested_only`` (changing them between
pages is 400 ``M_INVALID_PARAM``, as the spec allows).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Iterable, Protocol

from homeserver.errors import Forbidden, InvalidParam, NotFound
from homeserver.events.pdu import PDU
from homeserver.rooms.rules.visibility import WORLD_READABLE, history_visibility

SPACE_CHILD = "m.space.child"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
#: rooms walked at most per request, whatever the pages asked for (bounds the work)
MAX_WALK = 1000
_PREVIEWABLE_RULES = ("public", "knock")
_RESTRICTED_RULES = ("restricted", "knock_restricted")


@dataclasses.dataclass(frozen=True)
class HierarchyRequest:
    room_id: str
    user_id: str
    suggested_only: bool = False
    max_depth: int | None = None
    limit: int = DEFAULT_LIMIT
    from_token: str | None = None

    def binding(self) -> str:
        """What a pagination token is bound to (the spec: they cannot change)."""
        key = f"{self.room_id}|{self.max_depth}|{self.suggested_only}".encode()
        return format(zlib.crc32(key), "08x")


def valid_order(order: Any) -> bool:
    """Spec: ``order`` is at most 50 characters in the range \\x20 to \\x7E."""
    return isinstance(order, str) and len(order) <= 50 and \
        all(0x20 <= ord(c) <= 0x7E for c in order)


def ordered_links(states: Iterable[dict[str, Any]], *, suggested_only: bool
                  ) -> list[dict[str, Any]]:
    """The valid ``m.space.child`` stripped events of a space, in the spec's order."""
    links = [s for s in states if s.get("type") == SPACE_CHILD and s.get("state_key")
             and isinstance(s.get("content", {}).get("via"), list) and s["content"]["via"]
             and (not suggested_only or s["content"].get("suggested") is True)]

    def key(s: dict[str, Any]) -> tuple:
        order = s["content"].get("order")
        ordered = valid_order(order)
        return (not ordered, order if ordered else "", s["origin_server_ts"],
                s["state_key"])

    return sorted(links, key=key)


def child_links(events: list[PDU], *, suggested_only: bool) -> list[dict[str, Any]]:
    """The valid ``m.space.child`` events of a space, stripped, in the spec's order."""
    return ordered_links((stripped_child(e) for e in events if e.type == SPACE_CHILD),
                         suggested_only=suggested_only)


def stripped_child(event: PDU) -> dict[str, Any]:
    """A ``StrippedChildStateEvent``."""
    return {"type": event.type, "state_key": event.state_key,
            "content": dict(event.content), "sender": event.sender,
            "origin_server_ts": event.origin_server_ts}


class RemoteSpaces(Protocol):
    """``federation.remote_hierarchy.RemoteSpaces``: a remote server's answer about a
    room (``.room``, ``.children_state``, ``.children``, ``.inaccessible``) or None."""

    async def fetch(self, room_id: str, via: Iterable[str], *,
                    suggested_only: bool) -> Any: ...


@dataclasses.dataclass(frozen=True)
class _Pending:
    """A room waiting in the walk: how deep, which servers to ask about it, and its
    chunk if a remote parent's answer described it."""
    room_id: str
    depth: int
    via: tuple[str, ...] = ()
    described: dict[str, Any] | None = None


@dataclasses.dataclass
class _Found:
    """A room the user may see: its chunk (with children_state) and what to walk."""
    entry: dict[str, Any]
    links: list[dict[str, Any]]
    described: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    inaccessible: frozenset[str] = frozenset()


class SpaceHierarchy:
    def __init__(self, *, rooms: Any, store: Any, server_name: str | None = None,
                 remote: RemoteSpaces | None = None) -> None:
        self._rooms = rooms
        self._store = store
        self._server_name = server_name
        self._remote = remote

    async def hierarchy(self, req: HierarchyRequest) -> dict[str, Any]:
        offset = self._offset(req)
        root = await self._find(_Pending(req.room_id, 0,
                                         await self._root_via(req)), req)
        if root is None:
            raise Forbidden(f"You may not preview the room {req.room_id}")
        wanted = min(offset + req.limit, MAX_WALK)
        rooms: list[dict[str, Any]] = []
        seen: set[str] = set()
        skip: set[str] = set()
        # depth first: a stack of rooms; children pushed in reverse so the first
        # child is walked next
        stack: list[_Pending] = [_Pending(req.room_id, 0)]
        more = False
        while stack:
            pending = stack.pop()
            if pending.room_id in seen or pending.room_id in skip:
                continue
            seen.add(pending.room_id)
            found = root if pending.depth == 0 else await self._find(pending, req)
            if found is None:
                continue
            if len(rooms) >= wanted:
                more = True
                break
            rooms.append(found.entry)
            skip |= found.inaccessible
            if req.max_depth is None or pending.depth < req.max_depth:
                stack.extend(_Pending(link["state_key"], pending.depth + 1,
                                      tuple(link["content"]["via"]),
                                      found.described.get(link["state_key"]))
                             for link in reversed(found.links))
        body: dict[str, Any] = {"rooms": rooms[offset:]}
        if more and wanted < MAX_WALK:
            body["next_batch"] = f"{wanted}_{req.binding()}"
        return body

    def _offset(self, req: HierarchyRequest) -> int:
        if req.from_token is None:
            return 0
        offset, _, binding = req.from_token.partition("_")
        if not offset.isdigit() or binding != req.binding() or int(offset) >= MAX_WALK:
            raise InvalidParam("Invalid pagination token, or the request's room, "
                               "max_depth or suggested_only changed")
        return int(offset)

    async def _find(self, pending: _Pending, req: HierarchyRequest) -> _Found | None:
        """The room as the user may see it, from our copy if we are in it, else from
        its servers (module docstring); None if it is not to be shown."""
        room_id = pending.room_id
        if self._remote is None or await self._in_room(room_id):
            return await self._local(room_id, req)
        if pending.described is not None and (
                pending.described.get("room_type") != "m.space"
                or req.max_depth is not None and pending.depth >= req.max_depth):
            chunk = dict(pending.described)
            if not await self._may_see_remote(chunk, req.user_id):
                return None
            chunk.pop("allowed_room_ids", None)
            return _Found({**chunk, "children_state": []}, [])
        answer = await self._remote.fetch(room_id, pending.via,
                                          suggested_only=req.suggested_only)
        if answer is None:   # nobody answered: what we hold is better than nothing
            return await self._local(room_id, req)
        chunk = dict(answer.room)
        if not await self._may_see_remote(chunk, req.user_id):
            return None
        chunk.pop("allowed_room_ids", None)
        links = ordered_links(answer.children_state, suggested_only=req.suggested_only) \
            if chunk.get("room_type") == "m.space" else []
        return _Found({**chunk, "children_state": links}, links,
                      dict(answer.children), frozenset(answer.inaccessible))

    async def _local(self, room_id: str, req: HierarchyRequest) -> _Found | None:
        if not self._rooms.known(room_id) or \
                not await self._may_preview(room_id, req.user_id):
            return None
        entry, links = await self._entry(room_id, req.suggested_only)
        return None if entry is None else _Found(entry, links)

    async def _in_room(self, room_id: str) -> bool:
        """Whether we hold the room and a local user is joined or invited (else our
        copy may be stale, or the room gone on without us)."""
        if not self._rooms.known(room_id):
            return False
        members = await self._store.streams.get_room_members(room_id, ("join", "invite"))
        return any(u.endswith(":" + str(self._server_name)) for u in members)

    async def _root_via(self, req: HierarchyRequest) -> tuple[str, ...]:
        """Whom to ask about the requested room: the server in its ID (v1-v11) and
        the inviter's server of an invite our user holds for it."""
        via: list[str] = []
        _, _, domain = req.room_id.partition(":")
        if domain:
            via.append(domain)
        held = await self._store.remote_memberships.latest(req.user_id, req.room_id)
        sender = held.event.get("sender") if held is not None \
            and held.membership == "invite" else None
        if isinstance(sender, str) and sender.partition(":")[2] not in via:
            via.append(sender.partition(":")[2])
        return tuple(via)

    async def _may_see_remote(self, chunk: dict[str, Any], user_id: str) -> bool:
        """Synapse's ``_is_remote_room_accessible`` (module docstring)."""
        if chunk.get("join_rule", "public") in ("public", "knock", "knock_restricted") \
                or chunk.get("world_readable") is True:
            return True
        for allowed in chunk.get("allowed_room_ids") or ():
            membership = await self._store.streams.get_membership(user_id, allowed)
            if membership is not None and membership.membership == "join":
                return True
        membership = await self._store.streams.get_membership(user_id, chunk["room_id"])
        return membership is not None and membership.membership in ("join", "invite")

    async def _entry(self, room_id: str, suggested_only: bool
                     ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The room's ``SpaceHierarchyRoomsChunk`` and its child links to walk."""
        summary = await self._store.rooms.get_room_summary(room_id)
        if summary is None:
            return None, []
        entry = summary.as_chunk()
        links: list[dict[str, Any]] = []
        if summary.room_type == "m.space":
            try:
                actor = await self._rooms.get(room_id)
            except NotFound:
                return None, []
            children = await actor.current_state([(SPACE_CHILD, None)])
            links = child_links(list(children.values()), suggested_only=suggested_only)
        entry["children_state"] = links
        return entry, links

    async def _may_preview(self, room_id: str, user_id: str) -> bool:
        try:
            actor = await self._rooms.get(room_id)
        except NotFound:
            return False
        state = await actor.current_state([("m.room.join_rules", ""),
                                           ("m.room.history_visibility", ""),
                                           ("m.room.member", user_id)])
        member = state.get(("m.room.member", user_id))
        if member is not None and member.membership in ("join", "invite"):
            return True
        if history_visibility(state) == WORLD_READABLE:
            return True
        rules = state.get(("m.room.join_rules", ""))
        rule = rules.content.get("join_rule") if rules is not None else None
        if rule in _PREVIEWABLE_RULES:
            return True
        if rule in _RESTRICTED_RULES:
            allow = rules.content.get("allow")
            for condition in allow if isinstance(allow, list) else ():
                if isinstance(condition, dict) \
                        and condition.get("type") == "m.room_membership" \
                        and isinstance(condition.get("room_id"), str) \
                        and self._rooms.known(condition["room_id"]):
                    other = await self._rooms.get(condition["room_id"])
                    if await other.membership(user_id) == "join":
                        return True
        return False

    # -- for other servers (Server-Server API, "Spaces") --------------------------------
    async def for_server(self, room_id: str, origin: str, *,
                         suggested_only: bool = False) -> dict[str, Any]:
        """``GET /_matrix/federation/v1/hierarchy/{roomId}``: 404 M_NOT_FOUND if the
        room is unknown or ``origin`` may not see it."""
        if not self._rooms.known(room_id):
            raise NotFound("Unknown room")
        allowed = await self._server_access(room_id, origin)
        if allowed is None:
            raise NotFound("The room is unknown, or not accessible to your server")
        room, links = await self._entry(room_id, suggested_only)
        if room is None:
            raise NotFound("Unknown room")
        room["allowed_room_ids"] = allowed
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for link in links:
            child_id = link["state_key"]
            if not self._rooms.known(child_id):
                continue  # not ours to describe (the asking server asks its servers)
            child_allowed = await self._server_access(child_id, origin)
            entry, _ = await self._entry(child_id, False) if child_allowed is not None \
                else (None, [])
            if entry is None:
                inaccessible.append(child_id)
                continue
            entry.pop("children_state", None)
            entry["allowed_room_ids"] = child_allowed
            children.append(entry)
        return {"room": room, "children": children, "inaccessible_children": inaccessible}

    async def _server_access(self, room_id: str, origin: str) -> list[str] | None:
        """None if ``origin`` may not see the room, else its ``allowed_room_ids`` (the
        rooms whose members may join it, for ``restricted`` rooms; else empty)."""
        try:
            actor = await self._rooms.get(room_id)
        except NotFound:
            return None
        state = await actor.current_state([("m.room.join_rules", ""),
                                           ("m.room.history_visibility", "")])
        rules = state.get(("m.room.join_rules", ""))
        rule = rules.content.get("join_rule") if rules is not None else None
        allow = rules.content.get("allow") if rules is not None else None
        allowed = [c["room_id"] for c in (allow if isinstance(allow, list) else ())
                   if isinstance(c, dict) and c.get("type") == "m.room_membership"
                   and isinstance(c.get("room_id"), str)]
        if history_visibility(state) == WORLD_READABLE or rule in _PREVIEWABLE_RULES:
            return allowed if rule in _RESTRICTED_RULES else []
        if rule in _RESTRICTED_RULES:
            return allowed
        members = await self._store.streams.get_room_members(room_id, ("join", "invite"))
        if any(u.endswith(":" + origin) for u in members):
            return []
        return None
