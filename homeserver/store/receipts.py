"""Read receipts (``m.read``, ``m.read.private``, …) on the receipts stream.

Table ``receipts``: the latest receipt per (room, type, user, thread). ``thread_id``
is ``''`` for an unthreaded receipt (so the primary key holds on both dialects) and
is None again when read back.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata, upsert

UNTHREADED = ""

receipts = sa.Table(
    "receipts", metadata,
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("receipt_type", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("thread_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("data", JsonText, nullable=False),
    sa.Column("stream_pos", sa.BigInteger, nullable=False, index=True),
)

_c = receipts.c

_CACHE_SIZE = 100_000


@dataclasses.dataclass(frozen=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None
    event_id: str
    data: dict[str, Any]
    stream_pos: int


def _receipt(row: sa.Row) -> Receipt:
    return Receipt(row.room_id, row.receipt_type, row.user_id,
                   row.thread_id or None, row.event_id, row.data, row.stream_pos)


class Receipts:
    """The latest receipt of each user per room, type and thread."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # (room, type, user, thread) → receipt: /sync reads the user's own read receipt
        # for every room it sends (unread counts); receipts change only through
        # set_receipt here, which invalidates. (Several processes: DESIGN.md §8.)
        self._cache: collections.OrderedDict[tuple, Receipt | None] = \
            collections.OrderedDict()
        self._generation = 0

    async def set_receipt(self, room_id: str, receipt_type: str, user_id: str,
                          event_id: str, data: Mapping[str, Any], *,
                          thread_id: str | None = None) -> int:
        """Store (replace) a receipt; returns its stream position.

        Whether the new event is later than the old one is the room layer's call.
        """
        values = dict(room_id=room_id, receipt_type=receipt_type, user_id=user_id,
                      thread_id=thread_id or UNTHREADED, event_id=event_id,
                      data=dict(data))

        def txn(conn: Connection) -> int:
            pos = positions.next_position(conn, positions.RECEIPTS)
            upsert(conn, receipts, dict(values, stream_pos=pos),
                   ["room_id", "receipt_type", "user_id", "thread_id"])
            return pos

        try:
            return await self._db.run(txn)
        finally:
            self._generation += 1
            self._cache.pop((room_id, receipt_type, user_id, thread_id or UNTHREADED), None)

    async def get_receipt(self, room_id: str, receipt_type: str, user_id: str, *,
                          thread_id: str | None = None) -> Receipt | None:
        """One user's receipt, or None."""
        key = (room_id, receipt_type, user_id, thread_id or UNTHREADED)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]

        def txn(conn: Connection) -> Receipt | None:
            row = conn.execute(sa.select(receipts).where(
                _c.room_id == room_id, _c.receipt_type == receipt_type,
                _c.user_id == user_id,
                _c.thread_id == (thread_id or UNTHREADED))).first()
            return None if row is None else _receipt(row)

        generation = self._generation
        found = await self._db.run(txn)
        if generation == self._generation:  # no receipt was written meanwhile
            self._cache[key] = found
            self._trim()
        return found

    def _trim(self) -> None:
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    async def prefetch(self, room_ids: Iterable[str], receipt_types: Iterable[str],
                       user_id: str) -> None:
        """Read one user's unthreaded receipts of these types in these rooms into the
        cache, in one round trip (a first /sync asks for each room in turn)."""
        types = list(receipt_types)
        wanted = sorted({r for r in room_ids
                         if any((r, t, user_id, UNTHREADED) not in self._cache
                                for t in types)})
        if not wanted or not types:
            return

        def txn(conn: Connection) -> list[Receipt]:
            found: list[Receipt] = []
            for start in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(receipts).where(
                    _c.user_id == user_id, _c.receipt_type.in_(types),
                    _c.thread_id == UNTHREADED,
                    _c.room_id.in_(wanted[start:start + 500])))
                found += [_receipt(r) for r in rows]
            return found

        generation = self._generation
        found = await self._db.run(txn)
        if generation != self._generation:
            return  # a receipt was written meanwhile: let get_receipt read afresh
        for room_id in wanted:
            for receipt_type in types:
                self._cache.setdefault((room_id, receipt_type, user_id, UNTHREADED), None)
        for r in found:
            self._cache[(r.room_id, r.receipt_type, r.user_id, UNTHREADED)] = r
        self._trim()

    async def get_receipts_for_room(self, room_id: str) -> list[Receipt]:
        """Every current receipt in the room, in stream order."""
        def txn(conn: Connection) -> list[Receipt]:
            rows = conn.execute(sa.select(receipts).where(_c.room_id == room_id)
                                .order_by(_c.stream_pos))
            return [_receipt(r) for r in rows]

        return await self._db.run(txn)

    async def get_receipts_since(self, since: int, upto: int | None = None, *,
                                 room_ids: Iterable[str] | None = None) -> list[Receipt]:
        """Receipts written in (since, upto], optionally only in ``room_ids``."""
        wanted = None if room_ids is None else list(set(room_ids))
        if wanted == []:
            return []

        def txn(conn: Connection) -> list[Receipt]:
            end = positions.read_position(conn, positions.RECEIPTS) \
                if upto is None else upto
            stmt = sa.select(receipts).where(_c.stream_pos > since,
                                             _c.stream_pos <= end)
            if wanted is not None:
                stmt = stmt.where(_c.room_id.in_(wanted))
            return [_receipt(r) for r in conn.execute(stmt.order_by(_c.stream_pos))]

        return await self._db.run(txn)
