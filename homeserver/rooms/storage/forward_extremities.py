"""The room's forward extremities: its newest events, those no known event follows.

A new event of the room cites them as its prev events (spec: Server-Server API,
"Room DAG concepts"). Kept in step by ``RoomStore`` whenever a live timeline event is
written; historical events from backfill and outliers leave them untouched.

This class shares the room DB connection and never begins or commits a transaction.
"""

from __future__ import annotations

import sqlite3

from homeserver.events.pdu import PDU


class ForwardExtremities:
    """Kept in memory once read (``_all``): every local send reads them twice (its prev
    events, then the current state they lead to), and only :meth:`event_written`
    changes the table. :meth:`forget` drops the copy when a transaction rolls back."""

    __slots__ = ("_conn", "_all")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        #: every (event_id, depth), deepest first, as the table holds them; None
        #: until first read
        self._all: list[tuple[str, int]] | None = None

    def event_written(self, pdu: PDU) -> None:
        """``pdu`` joined the live timeline: it replaces the prev events it cites."""
        prev = pdu.prev_event_ids
        self._conn.executemany("DELETE FROM forward_extremities WHERE event_id = ?",
                               [(p,) for p in prev])
        # an event some known event already points at (backfill) is not an extremity
        referenced = self._conn.execute(
            "SELECT 1 FROM event_edges WHERE prev_event_id = ? LIMIT 1",
            (pdu.event_id,)).fetchone()
        if not referenced:
            self._conn.execute("INSERT OR REPLACE INTO forward_extremities VALUES (?, ?)",
                               (pdu.event_id, pdu.depth))
        if self._all is not None:
            gone = set(prev)
            gone.add(pdu.event_id)
            kept = [e for e in self._all if e[0] not in gone]
            if not referenced:
                kept.append((pdu.event_id, pdu.depth))
                kept.sort(key=_deepest_first)
            self._all = kept

    def deepest(self, limit: int | None = None) -> list[tuple[str, int]]:
        """(event_id, depth) of each forward extremity (the ``limit`` first), deepest
        first."""
        if self._all is None:
            self._all = [(e, d) for e, d in self._conn.execute(
                "SELECT event_id, depth FROM forward_extremities"
                " ORDER BY depth DESC, event_id")]
        return self._all[:limit] if limit is not None else list(self._all)

    def forget(self) -> None:
        """The table may differ from the copy (a rolled-back write): read it again."""
        self._all = None


def _deepest_first(extremity: tuple[str, int]) -> tuple[int, str]:
    # the table's order: depth descending, then event ID (SQLite compares text by its
    # UTF-8 bytes, which order as Python orders the code points)
    return -extremity[1], extremity[0]
