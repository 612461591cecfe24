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
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def event_written(self, pdu: PDU) -> None:
        """``pdu`` joined the live timeline: it replaces the prev events it cites."""
        self._conn.executemany("DELETE FROM forward_extremities WHERE event_id = ?",
                               [(p,) for p in pdu.prev_event_ids])
        # an event some known event already points at (backfill) is not an extremity
        referenced = self._conn.execute(
            "SELECT 1 FROM event_edges WHERE prev_event_id = ? LIMIT 1",
            (pdu.event_id,)).fetchone()
        if not referenced:
            self._conn.execute("INSERT OR REPLACE INTO forward_extremities VALUES (?, ?)",
                               (pdu.event_id, pdu.depth))

    def deepest(self, limit: int | None = None) -> list[tuple[str, int]]:
        """(event_id, depth) of each forward extremity (the ``limit`` first), deepest
        first."""
        return self._conn.execute(
            "SELECT event_id, depth FROM forward_extremities ORDER BY depth DESC, event_id"
            " LIMIT ?", (-1 if limit is None else limit,)).fetchall()
