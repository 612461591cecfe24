"""Read-only queries /sync needs over the room stream (no tables of its own).

* where each room stood at a stream position (the last room-stream entry at or
  before it), for many rooms at once: to bound the rooms' timelines by a sync token
  and to find the state a client already has (``store.room_positions`` answers it
  for one room);
* which rooms changed between two positions, with an upper bound chosen by the caller
  (``store.streams.rooms_changed_since`` always reads up to the newest entry, and a
  sync must read its token's positions before the memberships it uses).

Both are answered from the in-memory tail of the stream where it can
(``stream_tail.py``), so a woken long-poll usually makes no round trip here.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.stream_tail import MISS, RoomStreamTail
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
    def __init__(self, db: Database, tail: RoomStreamTail | None = None) -> None:
        self._db = db
        self._tail = tail if tail is not None else RoomStreamTail()

    async def _floor(self) -> None:
        if self._tail.floor is None:
            self._tail.set_floor(await self._db.run(positions.read_position, positions.ROOM))

    async def room_points(self, room_ids: Iterable[str], pos: int) -> dict[str, RoomPoint]:
        """room_id → its last stream entry with a position <= ``pos`` (rooms with none
        are absent). From the in-memory tail where it knows; one index seek per other
        room on ``(room_id, pos)``."""
        await self._floor()
        found: dict[str, RoomPoint] = {}
        missed: list[str] = []
        for room_id in sorted(set(room_ids)):
            point = self._tail.point(room_id, pos)
            if point is MISS:
                missed.append(room_id)
            else:
                found[room_id] = RoomPoint(room_id, *point)
        if not missed:
            return found

        def txn(conn: Connection) -> dict[str, tuple[int, int, str]]:
            read: dict[str, tuple[int, int, str]] = {}
            for room_id in missed:
                row = conn.execute(
                    sa.select(_s.pos, _s.room_seq, _s.event_id)
                    .where(_s.room_id == room_id, _s.pos <= pos)
                    .order_by(_s.pos.desc()).limit(1)).first()
                if row is not None:
                    read[room_id] = (row.pos, row.room_seq, row.event_id)
            return read

        read = await self._db.run(txn)
        for room_id in missed:
            point = read.get(room_id)
            self._tail.learn_point(room_id, pos, point)
            if point is not None:
                found[room_id] = RoomPoint(room_id, *point)
        return found

    async def rooms_changed_between(self, since: int, upto: int,
                                    room_ids: Iterable[str]) -> dict[str, RoomChange]:
        """room_id → its entries with ``since < pos <= upto``, for ``room_ids``."""
        wanted = sorted(set(room_ids))
        if not wanted or upto <= since:
            return {}
        await self._floor()
        found: dict[str, RoomChange] = {}
        missed: list[str] = []
        for room_id in wanted:
            change = self._tail.changes(room_id, since, upto)
            if change is MISS:
                missed.append(room_id)
            elif change is not None:
                found[room_id] = change
        if not missed:
            return found

        def txn(conn: Connection) -> None:
            for start in range(0, len(missed), 500):
                stmt = (sa.select(_s.room_id, sa.func.max(_s.pos).label("last_pos"),
                                  sa.func.min(_s.room_seq).label("min_seq"),
                                  sa.func.max(_s.room_seq).label("max_seq"),
                                  sa.func.count().label("n"))
                        .where(_s.pos > since, _s.pos <= upto,
                               _s.room_id.in_(missed[start:start + 500]))
                        .group_by(_s.room_id))
                for r in conn.execute(stmt):
                    found[r.room_id] = RoomChange(r.room_id, r.last_pos, r.min_seq,
                                                  r.max_seq, r.n)

        await self._db.run(txn)
        return found
