"""The room's backward extremities: where its known history stops.

An event the timeline cites as a prev event but does not hold as a timeline event
(unknown, or held only as an outlier, with no state) is a backward extremity: the
place to ask another server's ``/backfill`` for earlier history (spec: Server-Server
API, "Backfilling and retrieving missing events"). A room joined over federation
starts with the prev events of its join; a gap that inbound federation bridged with
the state before an event leaves one in the middle. Each row keeps the depth of the
deepest timeline event citing it, so ``/messages`` asks only about those below where
it has read to. Kept in step by ``RoomStore`` whenever an event becomes part of the
timeline (written, or promoted from outlier); a room whose history reaches its
create event has none left below it.

This class shares the room DB connection and never begins or commits a transaction.
"""

from __future__ import annotations

import sqlite3

from homeserver.events.pdu import PDU


class BackwardExtremities:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def joined_timeline(self, pdu: PDU) -> None:
        """``pdu`` is now a (non-outlier) event of the DAG: it stops being a backward
        extremity, and those of its prev events not held as timeline events become
        ones."""
        conn = self._conn
        conn.execute("DELETE FROM backward_extremities WHERE event_id = ?", (pdu.event_id,))
        for prev_id in pdu.prev_event_ids:
            row = conn.execute("SELECT outlier FROM events WHERE event_id = ?",
                               (prev_id,)).fetchone()
            if row is None or row[0]:
                conn.execute(
                    "INSERT INTO backward_extremities (event_id, depth) VALUES (?, ?)"
                    " ON CONFLICT (event_id) DO UPDATE"
                    " SET depth = max(depth, excluded.depth)", (prev_id, pdu.depth))

    def at_most(self, depth: int, limit: int) -> list[str]:
        """Backward extremities cited from no deeper than ``depth``, deepest first."""
        return [row[0] for row in self._conn.execute(
            "SELECT event_id FROM backward_extremities WHERE depth <= ?"
            " ORDER BY depth DESC, event_id LIMIT ?", (depth, limit))]
