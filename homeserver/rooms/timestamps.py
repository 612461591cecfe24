"""Finding a room's event by time, for ``GET /rooms/{roomId}/timestamp_to_event``
(spec: Client-Server API, "Timestamp to event"; added in v1.6).

:class:`TimestampLookup` is synchronous and shares the room store's sqlite3
connection (the store owns one as ``store.timestamps``). It reads the ``events``
table by ``origin_server_ts`` without an index of its own: one scan of the room's
timeline per request, which this rarely used endpoint (a client's "jump to date")
can afford better than every send can afford another index write.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from homeserver.errors import InvalidParam, NotFound

_TIMELINE = "outlier = 0 AND rejected IS NULL AND soft_failed = 0"


class TimestampLookup:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def closest(self, ts: int, forwards: bool) -> tuple[str, int] | None:
        """``(event_id, origin_server_ts)`` of the timeline event closest to ``ts``:
        the first at or after it (``forwards``) or the last at or before it; ties
        go to the earlier (forwards) or later (backwards) arrival."""
        if forwards:
            sql = (f"SELECT event_id, origin_server_ts FROM events WHERE {_TIMELINE}"
                   " AND origin_server_ts >= ? ORDER BY origin_server_ts, seq LIMIT 1")
        else:
            sql = (f"SELECT event_id, origin_server_ts FROM events WHERE {_TIMELINE}"
                   " AND origin_server_ts <= ?"
                   " ORDER BY origin_server_ts DESC, seq DESC LIMIT 1")
        row = self._conn.execute(sql, (ts,)).fetchone()
        return (row[0], row[1]) if row else None


class TimestampToEvent:
    """The endpoint's domain: who may ask (members, or anyone for a world-readable
    room, as Synapse's "in room or world readable") and the answer."""

    def __init__(self, *, rooms: Any, visibility: Any) -> None:
        self._rooms = rooms
        self._visibility = visibility

    async def find(self, room_id: str, user_id: str, ts: int,
                   direction: str) -> dict[str, Any]:
        if direction not in ("f", "b"):
            raise InvalidParam("dir must be 'f' or 'b'")
        actor = await self._rooms.get(room_id)
        await self._visibility.access(actor, user_id)  # 403 if the room is closed to them
        found = await actor.read(lambda store: store.timestamps.closest(ts, direction == "f"))
        if found is None:
            raise NotFound(f"No event found {'after' if direction == 'f' else 'before'} "
                           f"{ts} in {room_id}")
        return {"event_id": found[0], "origin_server_ts": found[1]}
