"""Points in one room named by a position of the global room stream.

A ``/sync`` token names a position of the room stream (``room_stream.pos``);
``/messages`` and ``/members?at=`` may be given such a token and need the room's own
position at that moment (spec: ``GET /rooms/{roomId}/messages`` ``from``/``to``, "a
``next_batch`` token returned by the ``/sync`` endpoint"). Reads ``room_stream``,
which :mod:`homeserver.store.streams` owns and writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.stream_tail import MISS, RoomStreamTail
from homeserver.store.streams import room_stream

_s = room_stream.c


class RoomPositions:
    def __init__(self, db: Database, tail: RoomStreamTail | None = None) -> None:
        self._db = db
        self._tail = tail if tail is not None else RoomStreamTail()

    async def last_event_at(self, room_id: str, stream_pos: int
                            ) -> tuple[int, str] | None:
        """(room_seq, event_id) of the room's last event at or before ``stream_pos``,
        or None if the room had no event in the stream by then."""
        point = self._tail.point(room_id, stream_pos)
        if point is not MISS:
            return point[1], point[2]

        def txn(conn: Connection) -> tuple[int, str] | None:
            row = conn.execute(sa.select(_s.room_seq, _s.event_id).where(
                _s.room_id == room_id, _s.pos <= stream_pos)
                .order_by(_s.pos.desc()).limit(1)).first()
            return None if row is None else (row.room_seq, row.event_id)

        return await self._db.run(txn)
