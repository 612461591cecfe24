"""The space hierarchy: ``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` (spec:
Client-Server API, "Spaces" → "Client behaviour"; space_hierarchy.yaml; added in v1.2).

A space lists its children as ``m.space.child`` state events (state key: the child's
room ID; ``content.via`` must be a non-empty list, else the link is void). The walk is
depth first from the requested room, children in the spec's order (``order`` string
if valid, then the link's ``origin_server_ts``, then the room ID); a room appears once
however often it is linked. Only rooms this server has are described (rooms known only
over federation are left out: asking their servers' hierarchy API is not built yet).

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
from typing import Any

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


def child_links(events: list[PDU], *, suggested_only: bool) -> list[PDU]:
    """The valid ``m.space.child`` events of a space, in the spec's order."""
    links = [e for e in events if e.type == SPACE_CHILD and e.state_key
             and isinstance(e.content.get("via"), list) and e.content["via"]
             and (not suggested_only or e.content.get("suggested") is True)]

    def key(e: PDU) -> tuple:
        order = e.content.get("order")
        ordered = valid_order(order)
        return (not ordered, order if ordered else "", e.origin_server_ts, e.state_key)

    return sorted(links, key=key)


def stripped_child(event: PDU) -> dict[str, Any]:
    """A ``StrippedChildStateEvent``."""
    return {"type": event.type, "state_key": event.state_key,
            "content": dict(event.content), "sender": event.sender,
            "origin_server_ts": event.origin_server_ts}


class SpaceHierarchy:
    def __init__(self, *, rooms: Any, store: Any) -> None:
        self._rooms = rooms
        self._store = store

    async def hierarchy(self, req: HierarchyRequest) -> dict[str, Any]:
        offset = self._offset(req)
        if not self._rooms.known(req.room_id) or \
                not await self._may_preview(req.room_id, req.user_id):
            raise Forbidden(f"You may not preview the room {req.room_id}")
        wanted = min(offset + req.limit, MAX_WALK)
        rooms: list[dict[str, Any]] = []
        seen: set[str] = set()
        # depth first: a stack of (room, depth); children pushed in reverse so the
        # first child is walked next
        stack: list[tuple[str, int]] = [(req.room_id, 0)]
        more = False
        while stack:
            room_id, depth = stack.pop()
            if room_id in seen:
                continue
            seen.add(room_id)
            if depth > 0 and (not self._rooms.known(room_id)
                              or not await self._may_preview(room_id, req.user_id)):
                continue
            if len(rooms) >= wanted:
                more = True
                break
            entry, links = await self._entry(room_id, req.suggested_only)
            if entry is None:
                continue
            rooms.append(entry)
            if req.max_depth is None or depth < req.max_depth:
                stack.extend((e.state_key, depth + 1) for e in reversed(links))
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

    async def _entry(self, room_id: str, suggested_only: bool
                     ) -> tuple[dict[str, Any] | None, list[PDU]]:
        """The room's ``SpaceHierarchyRoomsChunk`` and its child links to walk."""
        summary = await self._store.rooms.get_room_summary(room_id)
        if summary is None:
            return None, []
        entry = summary.as_chunk()
        links: list[PDU] = []
        if summary.room_type == "m.space":
            try:
                actor = await self._rooms.get(room_id)
            except NotFound:
                return None, []
            children = await actor.current_state([(SPACE_CHILD, None)])
            links = child_links(list(children.values()), suggested_only=suggested_only)
        entry["children_state"] = [stripped_child(e) for e in links]
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
            child_id = link.state_key
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
