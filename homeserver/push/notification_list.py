"""``GET /notifications`` (spec: Client-Server API, "Push Notifications", "Listing
Notifications"; notifications.yaml): the user's stored notifications, newest first,
paged by room-stream position, each with whether the user has read it.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam, NotFound
from homeserver.sync.unread import MAIN, receipt_read_seq

MAX_LIMIT = 100


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
        # rows of the latest events may still be gathering for their commit
        await self._notifications.stored()
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
        """The later of the unthreaded read point and the event's thread's (as the
        unread counts have it)."""
        return max([await receipt_read_seq(self._receipts, actor, user_id, thread)
                    for thread in (None, thread_id or MAIN)])
