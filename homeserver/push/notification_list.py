"""``GET /notifications`` (spec: Client-Server API, "Push Notifications", "Listing
Notifications"; notifications.yaml): the user's stored notifications, newest first,
paged by room-stream position, each with whether the user has read it.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam, NotFound
from homeserver.sync.timeline import seq_of

MAX_LIMIT = 100
_READ_TYPES = ("m.read", "m.read.private")


class NotificationList:
    def __init__(self, *, rooms: Any, notifications: Any, receipts: Any,
                 room_service: Any) -> None:
        self._rooms = rooms
        self._notifications = notifications
        self._receipts = receipts
        self._room_service = room_service

    async def list(self, user_id: str, from_token: str | None, limit: int,
                   only: str | None) -> dict[str, Any]:
        before = None
        if from_token:
            try:
                before = int(from_token)
            except ValueError:
                raise InvalidParam("from must be a token from an earlier response") from None
        rows = await self._notifications.page(user_id, before, min(limit, MAX_LIMIT),
                                              only == "highlight")
        result = []
        read_points: dict[tuple[str, str | None], int] = {}
        for row in rows:
            try:
                actor = await self._rooms.get(row.room_id)
            except NotFound:
                continue
            event = await actor.get_event(row.event_id)
            if event is None:
                continue
            key = (row.room_id, row.thread_id)
            if key not in read_points:
                read_points[key] = await self._read_seq(actor, user_id, row.thread_id)
            [client_event] = await self._room_service.serialize_events(
                row.room_id, [event], user_id=user_id)
            result.append({"actions": row.actions, "event": client_event,
                           "read": row.room_seq <= read_points[key],
                           "room_id": row.room_id, "ts": row.ts})
        body: dict[str, Any] = {"notifications": result}
        if len(rows) == min(limit, MAX_LIMIT) and rows:
            body["next_token"] = str(rows[-1].stream_pos)
        return body

    async def _read_seq(self, actor: Any, user_id: str, thread_id: str | None) -> int:
        best = 0
        for thread in (None, thread_id or "main"):
            for receipt_type in _READ_TYPES:
                receipt = await self._receipts.get_receipt(actor.room_id, receipt_type,
                                                           user_id, thread_id=thread)
                event = await actor.get_event(receipt.event_id) if receipt else None
                if event is not None:
                    best = max(best, seq_of(event))
        return best
