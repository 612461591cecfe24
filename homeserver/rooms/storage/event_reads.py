"""Reading a room's events: by ID or seq, the timeline (announcing, /sync, /messages),
auth chains and client transaction IDs.

What the timeline is: events neither outliers, rejected nor soft-failed; the *live*
timeline, the one the room stream and /sync know, also leaves out historical events
brought by backfill. Rows become PDUs through the room's :class:`DecodedEvents`, so a
recently read or written event is not decoded again.

This class shares the room DB connection and never begins or commits a transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable, Iterator, Sequence

from homeserver.events.pdu import PDU
from homeserver.rooms.rules.pagination import (
    Direction, TopologicalToken, topological_window)
from homeserver.rooms.rules.transactions import txn_id_of
from homeserver.rooms.storage.event_rows import EVENT_COLUMNS, DecodedEvents
from homeserver.rooms.storage.room_meta import RoomMeta

_TIMELINE = "outlier = 0 AND rejected IS NULL AND soft_failed = 0"
#: the timeline as the room stream and /sync know it: no historical (backfilled) events
_LIVE = f"{_TIMELINE} AND backfilled = 0"
#: IDs per ``IN (...)`` query
_CHUNK = 500


class EventReads:
    __slots__ = ("_conn", "_events", "_meta", "_last_seq")

    def __init__(self, conn: sqlite3.Connection, events: DecodedEvents,
                 meta: RoomMeta) -> None:
        self._conn = conn
        self._events = events
        self._meta = meta
        #: the highest seq (None: read it again); every woken /sync asks for it
        self._last_seq: int | None = None

    # -- single events ------------------------------------------------------------------
    def get_event(self, event_id: str, *, original: bool = False) -> PDU | None:
        """The event, or None if unknown.

        A redacted event comes back in its redacted form (spec: "Redactions"), with
        ``internal_metadata["redacted_by"]`` naming the redaction; ``original=True``
        returns the bytes as received instead (for moderation tools).
        """
        cached = None if original else self._events.get(event_id)
        if cached is not None:
            return cached
        row = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return self.row_to_pdu(row, original) if row else None

    def get_events(self, event_ids: Iterable[str]) -> dict[str, PDU]:
        """The known events among ``event_ids`` (unknown ones are simply absent)."""
        found: dict[str, PDU] = {}
        for event_id in event_ids:
            pdu = self.get_event(event_id)
            if pdu is not None:
                found[event_id] = pdu
        return found

    def get_event_by_seq(self, seq: int) -> PDU | None:
        row = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
        return self.row_to_pdu(row) if row else None

    def events_by_seqs(self, seqs: Iterable[int]) -> dict[int, PDU]:
        rows = self._rows_in(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({{}})",
                             seqs)
        return {row[0]: self.row_to_pdu(row) for row in rows}

    def row_to_pdu(self, row: tuple, original: bool = False) -> PDU:
        return self._events.from_row(row, self._meta.room_version, original)

    # -- IDs and seqs -------------------------------------------------------------------
    def seq_of(self, event_id: str) -> int | None:
        row = self._conn.execute(
            "SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def seqs_for_ids(self, event_ids: Iterable[str]) -> dict[str, int]:
        return dict(self._rows_in("SELECT event_id, seq FROM events WHERE event_id IN ({})",
                                  event_ids))

    def ids_for_seqs(self, seqs: Iterable[int]) -> dict[int, str]:
        return dict(self._rows_in("SELECT seq, event_id FROM events WHERE seq IN ({})", seqs))

    def last_seq(self) -> int:
        if self._last_seq is None:
            # a bare max() of the rowid is O(1) in SQLite; coalesce() around it is a scan
            self._last_seq = self._conn.execute(
                "SELECT max(seq) FROM events").fetchone()[0] or 0
        return self._last_seq

    def note_written(self, seq: int) -> None:
        """An event was just written at ``seq``."""
        if self._last_seq is not None:
            self._last_seq = max(self._last_seq, seq)

    def forget(self) -> None:
        """Drop what is cached here (a rolled-back scope may have written it)."""
        self._last_seq = None

    # -- client transaction IDs ---------------------------------------------------------
    def event_for_txn(self, txn_key: str) -> str | None:
        row = self._conn.execute(
            "SELECT event_id FROM event_txns WHERE txn_key = ?", (txn_key,)).fetchone()
        return row[0] if row else None

    def transaction_ids(self, events: Sequence[PDU], user_id: str, scope: str
                        ) -> dict[str, str]:
        """event_id → client transaction ID, for those of ``events`` that ``user_id``'s
        device (``scope``) sent with one (``event_txns``, written with each event)."""
        by_id = {e.event_id: e for e in events}
        found: dict[str, str] = {}
        for key, event_id in self._rows_in(
                "SELECT txn_key, event_id FROM event_txns WHERE event_id IN ({})", by_id):
            txn_id = txn_id_of(key, by_id[event_id], user_id, scope)
            if txn_id is not None:
                found[event_id] = txn_id
        return found

    def _rows_in(self, sql: str, values: Iterable) -> Iterator[tuple]:
        """The rows of ``sql`` for each chunk of ``values``, whose placeholders stand
        at its ``{}`` (``IN ({})``): SQLite caps the parameters of one statement."""
        values = list(values)
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            yield from self._conn.execute(sql.format(",".join("?" * len(chunk))), chunk)

    # -- the timeline -------------------------------------------------------------------
    def timeline_after(self, seq: int, limit: int | None = None) -> list[PDU]:
        """Timeline events with a seq above ``seq``, oldest first (for announcing)."""
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND {_LIVE}"
            " ORDER BY seq LIMIT ?", (max(seq, 0), -1 if limit is None else limit))
        return [self.row_to_pdu(row) for row in rows]

    def events_since(self, seq: int, limit: int) -> tuple[list[PDU], bool]:
        """The newest ``limit`` timeline events after ``seq``, newest last, and whether
        older ones after ``seq`` were left out (sync's ``limited``)."""
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND {_LIVE}"
            " ORDER BY seq DESC LIMIT ?", (max(seq, 0), limit + 1)).fetchall()
        limited = len(rows) > limit
        return [self.row_to_pdu(row) for row in reversed(rows[:limit])], limited

    def paginate(self, from_token: TopologicalToken | None, direction: Direction,
                 limit: int, to_token: TopologicalToken | None = None
                 ) -> tuple[list[PDU], TopologicalToken | None]:
        """Walk the timeline in topological order (depth, seq) from ``from_token``.

        Backwards returns newest first; forwards oldest first (the order /messages
        wants). The returned token continues the walk; None means the start of the room
        was reached going backwards.
        """
        start, window, args, order = topological_window(direction, from_token, to_token)
        sql = f"{window} AND {_TIMELINE}"
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS}, depth FROM events WHERE {sql}"
            f" ORDER BY depth {order}, seq {order} LIMIT ?", args + [limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        events = [self.row_to_pdu(row[:-1]) for row in rows]
        if not rows:
            return events, (None if direction is Direction.BACKWARDS else start)
        last_depth, last_seq = rows[-1][-1], rows[-1][0]
        if direction is Direction.BACKWARDS:
            return events, TopologicalToken(last_depth, last_seq - 1) if more else None
        return events, TopologicalToken(last_depth, last_seq)

    def token_before(self, event_id: str) -> TopologicalToken | None:
        """The position just before ``event_id`` (a prev_batch for a timeline)."""
        cached = self._events.get(event_id)   # /sync asks for the event it just read
        if cached is not None:
            return TopologicalToken(cached.depth, cached.internal_metadata["seq"] - 1)
        row = self._conn.execute(
            "SELECT depth, seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return TopologicalToken(row[0], row[1] - 1) if row else None

    def token_after(self, event_id: str) -> TopologicalToken | None:
        row = self._conn.execute(
            "SELECT depth, seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return TopologicalToken(row[0], row[1]) if row else None

    # -- the auth DAG -------------------------------------------------------------------
    def auth_chain(self, event_ids: Iterable[str]) -> list[PDU]:
        """Every known event reachable from ``event_ids`` by auth edges (excluding them)."""
        ids = list(event_ids)
        if not ids:
            return []
        rows = self._conn.execute(
            "WITH RECURSIVE chain(event_id) AS ("
            " SELECT a.auth_event_id FROM event_auth a JOIN events e ON a.event_seq = e.seq"
            f" WHERE e.event_id IN ({','.join('?' * len(ids))})"
            " UNION"
            " SELECT a.auth_event_id FROM chain c JOIN events e ON e.event_id = c.event_id"
            " JOIN event_auth a ON a.event_seq = e.seq)"
            f" SELECT {', '.join('e.' + c for c in EVENT_COLUMNS.split(', '))}"
            " FROM chain c JOIN events e ON e.event_id = c.event_id ORDER BY e.seq", ids)
        return [self.row_to_pdu(row) for row in rows]
