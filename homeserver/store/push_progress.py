"""How far push rule evaluation has got in each room (see
``homeserver.push.room_evaluation``): the outbox pattern of DESIGN.md §4 applied to
evaluation, so events committed and announced but not evaluated when the process
died are evaluated after the restart (notifications are idempotent per user and event,
so evaluating one twice is harmless).

Table ``push_progress``: room → the highest room seq whose notifications are stored.
"""

from __future__ import annotations

from typing import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.rooms.actor.memory import compact
from homeserver.store.database import Database
from homeserver.store.sql import metadata, upsert
from homeserver.store.streams import room_stream

push_progress = sa.Table(
    "push_progress", metadata,
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("room_seq", sa.BigInteger, nullable=False),
)

_p, _s = push_progress.c, room_stream.c


class PushProgress:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: every room's progress, read in one query on first use: after a restart the
        #: first /sync asks about each of the user's rooms (one writer process, as the
        #: other caches; DESIGN.md §8). A hibernating room leaves it (``forget``);
        #: from then on a room not in it is read alone.
        self._all: dict[str, int] | None = None
        self._all_complete = True

    async def get(self, room_id: str) -> int | None:
        """The room's evaluated seq, or None if evaluation never recorded one."""
        if self._all is None:
            def txn(conn: Connection) -> dict[str, int]:
                return dict(conn.execute(sa.select(_p.room_id, _p.room_seq)).all())

            loaded = await self._db.run(txn)
            if self._all is None:
                self._all = loaded
        if room_id in self._all or self._all_complete:
            return self._all.get(room_id)

        def one(conn: Connection) -> int | None:
            return conn.execute(sa.select(_p.room_seq)
                                .where(_p.room_id == room_id)).scalar()

        seq = await self._db.run(one)
        if seq is not None:
            # a set_many that finished meanwhile may have gone further
            seq = self._all[room_id] = max(seq, self._all.get(room_id, seq))
        return seq

    def compact(self) -> None:
        """Shrink the map to what it holds now (a memory releaser)."""
        if self._all is not None:
            compact(self._all)

    def forget(self, room_id: str) -> None:
        """The room hibernated with its progress stored: it leaves memory (its ID,
        made while the room was busy, would keep an allocator pool of that time in
        use: bench/README.md, "Memory at rest")."""
        if self._all is not None and self._all.pop(room_id, None) is not None:
            self._all_complete = False

    async def set_many(self, seqs: Mapping[str, int]) -> None:
        """Record progress (never moving a room back)."""
        values = dict(seqs)

        def txn(conn: Connection) -> None:
            for room_id, seq in values.items():
                upsert(conn, push_progress, dict(room_id=room_id, room_seq=seq),
                       ["room_id"], where=_p.room_seq < seq)

        if values:
            await self._db.run(txn)
            if self._all is not None:
                for room_id, seq in values.items():
                    self._all[room_id] = max(seq, self._all.get(room_id, seq))

    async def announced_after(self, room_id: str, after_seq: int, upto_seq: int,
                              limit: int) -> list[tuple[int, str, int]]:
        """(room seq, event ID, stream position) of the room's announced events with
        after_seq < seq <= upto_seq, oldest first, at most ``limit`` (the newest)."""
        def txn(conn: Connection) -> list[tuple[int, str, int]]:
            rows = conn.execute(sa.select(_s.room_seq, _s.event_id, _s.pos).where(
                _s.room_id == room_id, _s.room_seq > after_seq, _s.room_seq <= upto_seq)
                .order_by(_s.room_seq.desc()).limit(limit)).all()
            return [(r.room_seq, r.event_id, r.pos) for r in reversed(rows)]

        return await self._db.run(txn)
