"""Finding a room's event by time in its database, for
``GET /rooms/{roomId}/timestamp_to_event`` (spec: Client-Server API, "Timestamp to
event"; added in v1.6). The endpoint's domain is
:mod:`homeserver.rooms.features.timestamps`.

:class:`TimestampLookup` is synchronous and shares the room store's sqlite3
connection (the store owns one as ``store.timestamps``). It reads the ``events``
table by ``origin_server_ts`` without an index of its own: one scan of the room's
timeline per request, which this rarely used endpoint (a client's "jump to date")
can afford better than every send can afford another index write.
"""

from __future__ import annotations

import sqlite3

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
