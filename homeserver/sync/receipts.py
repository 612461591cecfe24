"""Receipts and read markers (spec: Client-Server API, "Receipts", "Read and unread
markers"; receipts.yaml, read_markers.yaml).

Receipts and the fully read marker are "up to" markers, so one that points at an
earlier event (by the room's arrival order) than the user's current one of the same
type and thread changes nothing. ``m.read.private`` is seen by its sender only, so it
wakes only their syncs; ``m.read`` wakes everyone in the room. ``m.fully_read`` through
the receipt endpoint is the read-markers API (room account data), never an
``m.receipt``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from homeserver.errors import BadJson, Forbidden, InvalidParam, NotFound
from homeserver.ids import parse_event_id, parse_room_id

READ, READ_PRIVATE, FULLY_READ = "m.read", "m.read.private", "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE, FULLY_READ)


class ReceiptService:
    def __init__(self, *, rooms: Any, receipts: Any, account_data: Any,
                 notify_room: Callable[[str], None], notify_user: Callable[[str], None],
                 now_ms: Callable[[], int]) -> None:
        """``receipts``: ``store.receipts``; ``account_data``: the AccountDataService."""
        self._rooms = rooms
        self._receipts = receipts
        self._account_data = account_data
        self._notify_room = notify_room
        self._notify_user = notify_user
        self._now_ms = now_ms
        self._observers: list[Callable[[str, str, str, str, dict], Any]] = []

    def add_observer(self, observer: Callable[[str, str, str, str, dict], Any]) -> None:
        """Call ``observer(room_id, receipt_type, user_id, event_id, data)`` after a
        receipt is stored (the federation sender passes public ones on); an awaitable
        it returns is awaited before the request is answered."""
        self._observers.append(observer)

    async def send_receipt(self, user_id: str, room_id: str, receipt_type: str,
                           event_id: str, body: Mapping[str, Any]) -> None:
        """``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}``."""
        if receipt_type not in RECEIPT_TYPES:
            raise InvalidParam(f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}")
        thread_id = body.get("thread_id")
        if thread_id is not None:
            if not isinstance(thread_id, str) or not thread_id:
                raise InvalidParam("thread_id field must be a non-empty string")
            if receipt_type == FULLY_READ:
                raise InvalidParam(f"thread_id is not allowed for {FULLY_READ}")
        actor, seq = await self._event_in_room(user_id, room_id, event_id)
        if receipt_type == FULLY_READ:
            current = await self._account_data.fully_read(user_id, room_id)
            if not await self._is_behind(actor, current, event_id, seq):
                await self._account_data.set_fully_read(user_id, room_id, event_id)
        else:
            await self._set_receipt(actor, user_id, receipt_type, event_id, seq, thread_id)

    async def set_read_markers(self, user_id: str, room_id: str,
                               body: Mapping[str, Any]) -> None:
        """``POST /rooms/{roomId}/read_markers``: the fully read marker and, as a
        shortcut, the read receipts (treated exactly as the receipt endpoint)."""
        for key in RECEIPT_TYPES:
            if body.get(key) is not None and not isinstance(body[key], str):
                raise BadJson(f"{key} must be an event ID")
        for key in (READ, READ_PRIVATE, FULLY_READ):
            if body.get(key) is not None:
                await self.send_receipt(user_id, room_id, key, body[key], {})

    async def _event_in_room(self, user_id: str, room_id: str,
                             event_id: str) -> tuple[Any, int]:
        parse_room_id(room_id)
        parse_event_id(event_id)
        actor = await self._rooms.get(room_id)
        if await actor.membership(user_id) != "join":
            raise Forbidden("You are not in this room")
        event = await actor.get_event(event_id)
        if event is None or event.internal_metadata.get("outlier"):
            raise NotFound("Event not found in this room")
        return actor, event.internal_metadata.get("seq", 0)

    async def _is_behind(self, actor: Any, current_id: str | None, event_id: str,
                         seq: int) -> bool:
        """Whether a marker at ``event_id`` (arrival ``seq``) would not move forward
        from ``current_id``: "up to" markers never move back."""
        if current_id is None:
            return False
        if current_id == event_id:
            return True
        current = await actor.get_event(current_id)
        return current is not None and current.internal_metadata.get("seq", 0) >= seq

    async def _set_receipt(self, actor: Any, user_id: str, receipt_type: str,
                           event_id: str, seq: int, thread_id: str | None) -> None:
        room_id = actor.room_id
        current = await self._receipts.get_receipt(room_id, receipt_type, user_id,
                                                   thread_id=thread_id)
        if await self._is_behind(actor, current.event_id if current else None,
                                 event_id, seq):
            return
        data: dict[str, Any] = {"ts": self._now_ms()}
        if thread_id is not None:
            data["thread_id"] = thread_id
        await self._receipts.set_receipt(room_id, receipt_type, user_id, event_id, data,
                                         thread_id=thread_id)
        for observer in self._observers:
            result = observer(room_id, receipt_type, user_id, event_id, data)
            if inspect.isawaitable(result):
                await result
        if receipt_type == READ_PRIVATE:
            self._notify_user(user_id)
        else:
            self._notify_room(room_id)
