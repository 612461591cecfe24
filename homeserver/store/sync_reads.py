"""Read-only queries /sync needs over the room stream (no tables of its own).

* where each room stood at a stream position (the last room-stream entry at or
  before it), for many rooms at once: to bound the rooms' timelines by a sync token
  and to find the state a client already has (``store.room_positions`` answers it
  for one room);
* which rooms changed between two positions, with an upper bound chosen by the caller
  (``store.streams.rooms_changed_since`` always reads up to the newest entry, and a
  sync must read its token's positions before the memberships it uses).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.streams import RoomChange, room_stream

_s = room_stream.c


@dataclasses.dataclass(frozen=True)
class RoomPoint:
    """The last event a room had announced at some stream position."""
    room_id: str
    pos: int
    room_seq: int
    event_id: str


class SyncReads:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def room_points(self, room_ids: Iterable[str], pos: int) -> dict[str, RoomPoint]:
        """room_id → its last stream entry with a position <= ``pos`` (rooms with none
        are absent). One index seek per room on ``(room_id, pos)``."""
        wanted = sorted(set(room_ids))
        if not wanted:
            return {}

        def txn(conn: Connection) -> dict[str, RoomPoint]:
            found: dict[str, RoomPoint] = {}
            for room_id in wanted:
                row = conn.execute(
                    sa.select(_s.pos, _s.room_seq, _s.event_id)
                    .where(_s.room_id == room_id, _s.pos <= pos)
                    .order_by(_s.pos.desc()).limit(1)).first()
                if row is not None:
                    found[room_id] = RoomPoint(room_id, row.pos, row.room_seq, row.event_id)
            return found

        return await self._db.run(txn)

    async def rooms_changed_between(self, since: int, upto: int,
                                    room_ids: Iterable[str]) -> dict[str, RoomChange]:
        """room_id → its entries with ``since < pos <= upto``, for ``room_ids``."""
        wanted = sorted(set(room_ids))
        if not wanted or upto <= since:
            return {}

        def txn(conn: Connection) -> dict[str, RoomChange]:
            found: dict[str, RoomChange] = {}
            for start in range(0, len(wanted), 500):
                stmt = (sa.select(_s.room_id, sa.func.max(_s.pos).label("last_pos"),
                                  sa.func.min(_s.room_seq).label("min_seq"),
                                  sa.func.max(_s.room_seq).label("max_seq"),
                                  sa.func.count().label("n"))
                        .where(_s.pos > since, _s.pos <= upto,
                               _s.room_id.in_(wanted[start:start + 500]))
                        .group_by(_s.room_id))
                for r in conn.execute(stmt):
                    found[r.room_id] = RoomChange(r.room_id, r.last_pos, r.min_seq,
                                                  r.max_seq, r.n)
            return found

        return await self._db.run(txn)
