"""Room aliases and the published room directory (spec: Client-Server API, "Room
aliases" / directory.yaml, "Published room directory" / list_public_rooms.yaml).

- An alias maps ``#local:our.server`` to a room. Members of a room may create
  aliases for it; the alias's creator, server admins and whoever may set the room's
  ``m.room.canonical_alias`` may delete it (and the canonical alias event then drops
  it, where they have the power to change it).
- ``m.room.canonical_alias`` may only list new aliases that are well-formed and, if
  local, point to the room (M_INVALID_PARAM / M_BAD_ALIAS). Aliases on other servers
  cannot be checked without federation and are accepted.
- The directory lists published rooms from ``store.rooms``'s stats (kept current by
  :mod:`homeserver.rooms.features.stats`); whoever may set the canonical alias may
  publish or unpublish a room.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Collection, Mapping, Protocol

from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events.pdu import PDU
from homeserver.ids import InvalidId, RoomAlias
from homeserver.rooms.features.membership import FEDERATION_MISSING
from homeserver.rooms.rules import power_levels as pl
from homeserver.rooms.rules.power_levels import CREATE_KEY, POWER_LEVELS_KEY
from homeserver.rooms.rules.visibility import HISTORY_VISIBILITY_KEY, WORLD_READABLE, \
    history_visibility
from homeserver.store.rooms import InvalidPaginationToken

CANONICAL_ALIAS = "m.room.canonical_alias"


def room_types_filter(value: Any) -> list[str | None] | None:
    """``filter.room_types`` of a public rooms request (client and federation)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise BadJson("filter.room_types must be a list of strings or nulls")
    return value


#: /publicRooms answers at most this many rooms per page
MAX_PUBLIC_ROOMS = 500


def _parse_alias(alias: str) -> RoomAlias:
    try:
        return RoomAlias.parse(alias)
    except InvalidId as e:
        raise InvalidParam(f"Room alias invalid: {e.message}") from None


def canonical_aliases(content: Mapping[str, Any]) -> list[str]:
    """``alias`` and ``alt_aliases`` of a canonical alias event's content."""
    found = []
    alias = content.get("alias")
    if isinstance(alias, str):
        found.append(alias)
    alt = content.get("alt_aliases")
    if isinstance(alt, list):
        found.extend(a for a in alt if isinstance(a, str))
    return found


class RemoteDirectory(Protocol):
    """Federation ``/query/directory`` and ``/publicRooms`` of other servers."""
    async def resolve_alias(self, alias: str, domain: str) -> dict[str, Any]: ...

    async def public_rooms(self, server: str, *, limit: int | None, since: str | None,
                           search_term: str | None,
                           room_types: list[str | None] | None) -> dict[str, Any]: ...


class RoomDirectory:
    def __init__(self, *, rooms, store, server_name: str,
                 send_state: Callable[..., Awaitable[str]]) -> None:
        self._rooms = rooms
        self._store = store
        self._server_name = server_name
        self._send_state = send_state
        self._remote: RemoteDirectory | None = None

    def attach_remote(self, remote: "RemoteDirectory") -> None:
        """Ask other servers about their aliases and published rooms (federation;
        attached by the composition root once the federation client exists, which is
        built after the rooms)."""
        self._remote = remote

    def _local(self, alias: str) -> RoomAlias:
        parsed = _parse_alias(alias)
        if parsed.domain != self._server_name:
            raise InvalidParam(f"Room alias {alias} is not on this server")
        return parsed

    async def _may_manage(self, room_id: str, user_id: str) -> bool:
        """Joined and able to send m.room.canonical_alias (Synapse's "may change the
        room list" rule)."""
        actor = await self._rooms.get(room_id)
        key = ("m.room.member", user_id)
        state = await actor.current_state([key, POWER_LEVELS_KEY, CREATE_KEY])
        member = state.get(key)
        if member is None or member.membership != "join":
            return False
        return pl.can_send(user_id, CANONICAL_ALIAS, True, state)

    async def _is_admin(self, user_id: str) -> bool:
        info = await self._store.accounts.get_user(user_id)
        return bool(info is not None and info.is_admin)

    # -- aliases ------------------------------------------------------------------------
    async def create_alias(self, user_id: str, alias: str, room_id: str) -> None:
        """PUT /directory/room/{roomAlias} (409 M_UNKNOWN if it exists)."""
        parsed = self._local(alias)
        if not self._rooms.known(room_id):
            raise NotFound(f"Room {room_id} not found")
        actor = await self._rooms.get(room_id)
        if await actor.membership(user_id) != "join" and not await self._is_admin(user_id):
            raise Forbidden(f"You are not in room {room_id}")
        if not await self._store.rooms.create_alias(parsed.to_string(), room_id,
                                                    [self._server_name], user_id):
            raise MatrixError(f"Room alias {alias} already exists.", errcode="M_UNKNOWN",
                              status=409)

    async def resolve_alias(self, alias: str) -> dict[str, Any]:
        """GET /directory/room/{roomAlias}: ``{room_id, servers}``."""
        parsed = _parse_alias(alias)
        if parsed.domain != self._server_name and self._remote is not None:
            return await self._remote.resolve_alias(parsed.to_string(), parsed.domain)
        if parsed.domain != self._server_name:
            raise NotFound(f"Room alias {alias} is on another server: {FEDERATION_MISSING}")
        info = await self._store.rooms.get_alias(parsed.to_string())
        if info is None:
            raise NotFound(f"Room alias {alias} not found.")
        servers = list(dict.fromkeys([self._server_name, *info.servers]))
        return {"room_id": info.room_id, "servers": servers}

    async def delete_alias(self, user_id: str, alias: str) -> None:
        """DELETE /directory/room/{roomAlias}."""
        parsed = self._local(alias)
        name = parsed.to_string()
        info = await self._store.rooms.get_alias(name)
        if info is None:
            raise NotFound(f"Room alias {alias} not found.")
        known = self._rooms.known(info.room_id)
        if info.creator != user_id and not await self._is_admin(user_id) \
                and not (known and await self._may_manage(info.room_id, user_id)):
            raise Forbidden("You don't have permission to delete the alias.")
        await self._store.rooms.delete_alias(name)
        if known:
            await self._drop_from_canonical(info.room_id, user_id, name)

    async def _drop_from_canonical(self, room_id: str, user_id: str, alias: str) -> None:
        actor = await self._rooms.get(room_id)
        event = (await actor.current_state([(CANONICAL_ALIAS, "")])).get(
            (CANONICAL_ALIAS, ""))
        if event is None or alias not in canonical_aliases(event.content):
            return
        content = dict(event.content)
        if content.get("alias") == alias:
            content.pop("alias")
        if isinstance(content.get("alt_aliases"), list):
            content["alt_aliases"] = [a for a in content["alt_aliases"] if a != alias]
            if not content["alt_aliases"]:
                content.pop("alt_aliases")
        try:
            await self._send_state(room_id, user_id, CANONICAL_ALIAS, "", content)
        except Forbidden:
            pass  # the spec: delete the alias even if the event cannot be updated

    async def local_aliases(self, room_id: str, user_id: str) -> list[str]:
        """GET /rooms/{roomId}/aliases: members, or anyone for world-readable rooms."""
        actor = await self._rooms.get(room_id)
        key = ("m.room.member", user_id)
        state = await actor.current_state([key, HISTORY_VISIBILITY_KEY])
        member = state.get(key)
        if (member is None or member.membership != "join") \
                and history_visibility(state) != WORLD_READABLE \
                and not await self._is_admin(user_id):
            raise Forbidden("You are not a member of the room.")
        return await self._store.rooms.get_aliases_for_room(room_id)

    async def check_canonical_alias(self, room_id: str, content: Mapping[str, Any],
                                    current: PDU | None) -> None:
        """Validate the aliases a new ``m.room.canonical_alias`` content adds."""
        alias = content.get("alias")
        if alias is not None and not isinstance(alias, str):
            raise BadJson("alias must be a string")
        alt = content.get("alt_aliases")
        if alt is not None and (not isinstance(alt, list)
                                or not all(isinstance(a, str) for a in alt)):
            raise BadJson("alt_aliases must be a list of strings")
        existing = set(canonical_aliases(current.content)) if current is not None else set()
        for name in canonical_aliases(content):
            if name in existing:
                continue
            parsed = _parse_alias(name)
            if parsed.domain != self._server_name:
                continue
            info = await self._store.rooms.get_alias(parsed.to_string())
            if info is None or info.room_id != room_id:
                raise MatrixError(f"The alias '{name}' does not point to this room.",
                                  errcode="M_BAD_ALIAS", status=400)

    # -- the published room directory ---------------------------------------------------
    async def get_visibility(self, room_id: str) -> str:
        """GET /directory/list/room/{roomId}."""
        info = await self._store.rooms.get_room(room_id)
        if info is None:
            raise NotFound("Room not found")
        return "public" if info.is_public else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        """PUT /directory/list/room/{roomId}."""
        if visibility not in ("public", "private"):
            raise InvalidParam("visibility must be 'public' or 'private'")
        if await self._store.rooms.get_room(room_id) is None or not self._rooms.known(room_id):
            raise NotFound("Room not found")
        if not await self._may_manage(room_id, user_id) and not await self._is_admin(user_id):
            raise Forbidden("You don't have permission to change the room's visibility "
                            "in the directory.")
        await self._store.rooms.set_room_public(room_id, visibility == "public")

    async def public_rooms(self, *, limit: int | None = None, since: str | None = None,
                           search_term: str | None = None,
                           room_types: Collection[str | None] | None = None,
                           server: str | None = None) -> dict[str, Any]:
        """GET/POST /publicRooms: one page of the published rooms, biggest first."""
        if server is not None and server != self._server_name and self._remote is not None:
            return await self._remote.public_rooms(
                server, limit=limit, since=since, search_term=search_term,
                room_types=None if room_types is None else list(room_types))
        if server is not None and server != self._server_name:
            raise NotFound(f"Cannot list the rooms of {server}: {FEDERATION_MISSING}")
        limit = MAX_PUBLIC_ROOMS if not limit or limit < 0 else min(limit, MAX_PUBLIC_ROOMS)
        try:
            page = await self._store.rooms.list_public_rooms(
                limit=limit, since=since or None, search_term=search_term or None,
                room_types=room_types)
        except InvalidPaginationToken:
            raise InvalidParam(f"invalid pagination token {since!r}") from None
        response: dict[str, Any] = {
            "chunk": [room.as_chunk() for room in page.chunk],
            "total_room_count_estimate": page.total_room_count_estimate,
        }
        if page.next_batch is not None:
            response["next_batch"] = page.next_batch
        if page.prev_batch is not None:
            response["prev_batch"] = page.prev_batch
        return response
