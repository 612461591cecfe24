"""Account data and room tags (spec: Client-Server API, "Client Config" and "Room
Tagging"; account-data.yaml, tags.yaml).

A user reads and writes only their own data (403 otherwise). Types the server
manages (``m.fully_read``, ``m.push_rules``) cannot be set through the account-data
API (405 ``M_BAD_JSON``, spec "Server Behaviour"); the fully-read marker is set here
by the read-markers API. Every change wakes the user's syncs.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.ids import parse_room_id

SERVER_MANAGED = frozenset({"m.fully_read", "m.push_rules"})
MAX_TAG_BYTES = 255


def _own(requester: str, user_id: str, verb: str) -> None:
    if requester != user_id:
        raise Forbidden(f"Cannot {verb} account data for other users.")


def _settable(data_type: str) -> None:
    if data_type in SERVER_MANAGED:
        raise MatrixError(f"Cannot set {data_type} through this API.",
                          errcode="M_BAD_JSON", status=405)


class AccountDataService:
    def __init__(self, store: Any, notify_user: Callable[[str], None]) -> None:
        """``store``: ``GlobalStore.account_data``."""
        self._store = store
        self._notify_user = notify_user

    # -- global and per-room account data ---------------------------------------------
    async def set(self, requester: str, user_id: str, data_type: str,
                  content: Mapping[str, Any], room_id: str | None = None) -> None:
        _own(requester, user_id, "add")
        if room_id is not None:
            parse_room_id(room_id)
        _settable(data_type)
        await self._store.set_account_data(user_id, data_type, content, room_id)
        self._notify_user(user_id)

    async def get(self, requester: str, user_id: str, data_type: str,
                  room_id: str | None = None) -> dict[str, Any]:
        _own(requester, user_id, "get")
        if room_id is not None:
            parse_room_id(room_id)
        content = await self._store.get_account_data(user_id, data_type, room_id)
        if content is None:
            raise NotFound("Account data not found.")
        return content

    async def fully_read(self, user_id: str, room_id: str) -> str | None:
        """The event the user's fully read marker points at, if any."""
        content = await self._store.get_account_data(user_id, "m.fully_read", room_id)
        event_id = content.get("event_id") if isinstance(content, dict) else None
        return event_id if isinstance(event_id, str) else None

    async def set_fully_read(self, user_id: str, room_id: str, event_id: str) -> None:
        """The ``m.fully_read`` room account data (read-markers API only)."""
        await self._store.set_account_data(user_id, "m.fully_read",
                                           {"event_id": event_id}, room_id)
        self._notify_user(user_id)

    # -- tags -------------------------------------------------------------------------
    async def get_tags(self, requester: str, user_id: str, room_id: str) -> dict[str, Any]:
        _own(requester, user_id, "get")
        parse_room_id(room_id)
        return {"tags": await self._store.get_tags_for_room(user_id, room_id)}

    async def add_tag(self, requester: str, user_id: str, room_id: str, tag: str,
                      content: Mapping[str, Any]) -> None:
        _own(requester, user_id, "add")
        parse_room_id(room_id)
        if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
            raise InvalidParam(f"A tag name must be 1 to {MAX_TAG_BYTES} bytes")
        order = content.get("order")
        if order is not None and (isinstance(order, bool)
                                  or not isinstance(order, (int, float))):
            raise BadJson("order must be a number")
        await self._store.add_tag(user_id, room_id, tag, content)
        self._notify_user(user_id)

    async def remove_tag(self, requester: str, user_id: str, room_id: str,
                         tag: str) -> None:
        _own(requester, user_id, "remove")
        parse_room_id(room_id)
        await self._store.remove_tag(user_id, room_id, tag)
        self._notify_user(user_id)
