"""Asking other servers about a space we do not hold: ``GET
/_matrix/federation/v1/hierarchy/{roomId}`` (spec: Server-Server API, "Spaces";
Client-Server API, "Spaces" → "Server behaviour": a server that does not know a room
asks the servers in the ``m.space.child`` event's ``via``).

:func:`parse_answer` is pure: it keeps of a remote answer only what has the spec's
shape (the room must be the one asked for; children are objects with a ``room_id``;
``children_state`` entries are ``m.space.child`` stripped events with a non-empty
``via``), so a confused or hostile server cannot put anything else into our clients'
answers. :class:`RemoteSpaces` asks up to :data:`MAX_SERVERS` of the ``via`` servers in
turn (the first good answer wins) and keeps each answer — or that nobody answered —
for :data:`CACHE_MS`, so paging through a hierarchy (each page re-walks it) asks each
space's servers once, as Synapse's five-minute cache of the same request does.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any, Callable, Iterable, Mapping, Protocol

from federation.client import RemoteError
from homeserver.ids import is_valid_server_name

#: how long an answer (or that no server answered) is reused
CACHE_MS = 5 * 60_000
#: ``via`` servers asked at most per room (Synapse: MAX_SERVERS_PER_SPACE)
MAX_SERVERS = 3
_CACHE_MAX = 2_000
_FED = "/_matrix/federation/v1"
_SPACE_CHILD = "m.space.child"
#: what a room chunk may carry to our clients, with its JSON type
_CHUNK_FIELDS: dict[str, type | tuple[type, ...]] = {
    "room_id": str, "name": str, "topic": str, "canonical_alias": str,
    "avatar_url": str, "join_rule": str, "room_type": str, "room_version": str,
    "encryption": str, "num_joined_members": int, "world_readable": bool,
    "guest_can_join": bool, "allowed_room_ids": list,
}


@dataclasses.dataclass(frozen=True)
class RemoteSpace:
    """A remote server's description of a room and its children."""
    room: dict[str, Any]                   # room chunk, without children_state
    children_state: list[dict[str, Any]]   # the room's m.space.child stripped events
    children: dict[str, dict[str, Any]]    # child room ID → its chunk
    inaccessible: frozenset[str]           # children the answering server may not show


class FederationGet(Protocol):
    async def get_json(self, destination: str, path: str,
                       args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None) -> Any: ...


def room_chunk(value: Any) -> dict[str, Any] | None:
    """The fields of a ``SpaceHierarchyRoomsChunk`` we pass on, type-checked; None if
    it names no room. Required booleans/counts default as a missing value would read."""
    if not isinstance(value, dict) or not isinstance(value.get("room_id"), str):
        return None
    chunk = {k: v for k, v in value.items()
             if k in _CHUNK_FIELDS and isinstance(v, _CHUNK_FIELDS[k])
             and not (k == "num_joined_members" and isinstance(v, bool))}
    if "allowed_room_ids" in chunk:
        chunk["allowed_room_ids"] = [r for r in chunk["allowed_room_ids"]
                                     if isinstance(r, str)]
    chunk.setdefault("num_joined_members", 0)
    chunk.setdefault("world_readable", False)
    chunk.setdefault("guest_can_join", False)
    return chunk


def child_state(value: Any) -> dict[str, Any] | None:
    """A valid ``StrippedChildStateEvent`` for an ``m.space.child`` link, or None."""
    if not isinstance(value, dict) or value.get("type") != _SPACE_CHILD:
        return None
    content, state_key = value.get("content"), value.get("state_key")
    ts, sender = value.get("origin_server_ts"), value.get("sender")
    if not isinstance(content, dict) or not isinstance(state_key, str) or not state_key \
            or not isinstance(sender, str) or not isinstance(ts, int) \
            or isinstance(ts, bool):
        return None
    via = content.get("via")
    if not isinstance(via, list) or not any(isinstance(s, str) for s in via):
        return None
    return {"type": _SPACE_CHILD, "state_key": state_key, "content": dict(content),
            "sender": sender, "origin_server_ts": ts}


def parse_answer(room_id: str, body: Any) -> RemoteSpace | None:
    """A remote ``/hierarchy`` answer for ``room_id`` (module docstring), or None if
    it is not one."""
    if not isinstance(body, dict):
        return None
    raw_room = body.get("room")
    room = room_chunk(raw_room)
    if room is None or room["room_id"] != room_id:
        return None
    raw_state = raw_room.get("children_state")
    states = [s for s in map(child_state, raw_state if isinstance(raw_state, list) else ())
              if s is not None]
    raw_children = body.get("children")
    children: dict[str, dict[str, Any]] = {}
    for chunk in map(room_chunk, raw_children if isinstance(raw_children, list) else ()):
        if chunk is not None and chunk["room_id"] != room_id:
            children.setdefault(chunk["room_id"], chunk)
    raw_inaccessible = body.get("inaccessible_children")
    inaccessible = frozenset(
        r for r in (raw_inaccessible if isinstance(raw_inaccessible, list) else ())
        if isinstance(r, str))
    return RemoteSpace(room=room, children_state=states, children=children,
                       inaccessible=inaccessible)


def via_servers(via: Iterable[Any], own_server: str) -> list[str]:
    """The servers worth asking: valid names, not ourselves, each once, in order."""
    out: list[str] = []
    for server in via:
        if isinstance(server, str) and server != own_server and server not in out \
                and is_valid_server_name(server):
            out.append(server)
    return out


class RemoteSpaces:
    """What the space hierarchy asks of other servers (module docstring)."""

    def __init__(self, *, client: FederationGet, server_name: str,
                 now_ms: Callable[[], int]) -> None:
        self._client = client
        self._server_name = server_name
        self._now_ms = now_ms
        self._cache: dict[tuple[str, bool], tuple[int, RemoteSpace | None]] = {}

    async def fetch(self, room_id: str, via: Iterable[str], *,
                    suggested_only: bool) -> RemoteSpace | None:
        """The first good answer of the ``via`` servers about ``room_id``; None if
        none of them gave one."""
        key = (room_id, suggested_only)
        now = self._now_ms()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_MS:
            return cached[1]
        path = f"{_FED}/hierarchy/{urllib.parse.quote(room_id, safe='')}"
        args = {"suggested_only": "true" if suggested_only else "false"}
        answer: RemoteSpace | None = None
        servers = via_servers(via, self._server_name)[:MAX_SERVERS]
        for server in servers:
            try:
                body = await self._client.get_json(server, path, args)
            except RemoteError:
                continue   # the next via server may know it
            answer = parse_answer(room_id, body)
            if answer is not None:
                break
        if servers:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()  # crude but bounded; entries live minutes anyway
            self._cache[key] = (self._now_ms(), answer)
        return answer


__all__ = ["CACHE_MS", "MAX_SERVERS", "RemoteSpace", "RemoteSpaces", "child_state",
           "parse_answer", "room_chunk", "via_servers"]
