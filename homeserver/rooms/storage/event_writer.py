"""Writing decided events into a room's database: the event row, its DAG edges and
client transaction key, and the indexes kept in step with the timeline (forward and
backward extremities, redactions, relations, full-text search).

The actor decides (auth, state resolution) and hands over an :class:`EventContext`;
nothing here judges an event. Current state is the caller's separate decision.

This class shares the room DB connection and never begins or commits a transaction:
``RoomStore`` wraps its calls in one.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from homeserver.events.pdu import PDU
from homeserver.rooms.storage.backward_extremities import BackwardExtremities
from homeserver.rooms.storage.event_reads import EventReads
from homeserver.rooms.storage.event_rows import DecodedEvents, encode
from homeserver.rooms.storage.forward_extremities import ForwardExtremities
from homeserver.rooms.storage.redactions import Redactions
from homeserver.rooms.storage.relations import RelationIndex
from homeserver.rooms.storage.search_index import SearchIndex
from homeserver.rooms.storage.state_store import StateGroupStore


@dataclasses.dataclass
class EventContext:
    """An event and what the actor decided about it, ready to be written."""

    pdu: PDU
    #: state group before the event; None only for outliers
    state_before: int | None = None
    #: state group after; computed by ``persist`` when None (before + the event itself
    #: for an accepted state event, else the same as before)
    state_after: int | None = None
    outlier: bool = False
    #: why the event was rejected by the auth rules, or None if accepted
    rejected: str | None = None
    soft_failed: bool = False
    #: for a redaction: its sender may redact anyone's events (power >= "redact")
    redactor_has_power: bool = False
    #: client transaction key (the event is the answer to a retry with the same key)
    txn_key: str | None = None
    #: historical, from backfill: written with a negative seq (before every live event
    #: of its depth), never announced, forward extremities untouched
    backfilled: bool = False
    #: assigned by ``persist``
    seq: int | None = None

    @property
    def in_timeline(self) -> bool:
        return not self.outlier and self.rejected is None and not self.soft_failed


class DuplicateEvent(ValueError):
    pass


class EventWriter:
    __slots__ = ("_conn", "_events", "_reads", "_state", "_relations", "_search",
                 "_forward", "_backward", "_redactions")

    def __init__(self, conn: sqlite3.Connection, events: DecodedEvents, reads: EventReads,
                 state: StateGroupStore, relations: RelationIndex, search: SearchIndex,
                 forward: ForwardExtremities, backward: BackwardExtremities) -> None:
        self._conn = conn
        self._events = events
        self._reads = reads
        self._state = state
        self._relations = relations
        self._search = search
        self._forward = forward
        self._backward = backward
        self._redactions = Redactions(conn)

    def persist_one(self, ctx: EventContext) -> int:
        """Write ``ctx``'s event; fills in its ``seq`` and ``state_after``."""
        pdu = ctx.pdu
        raw = pdu.raw if pdu.raw is not None else encode(pdu)
        # the group after an accepted state event needs the event's seq: filled below
        new_state = (ctx.state_after is None and not ctx.outlier and pdu.is_state()
                     and ctx.rejected is None)
        if ctx.state_after is None and not ctx.outlier and not new_state:
            ctx.state_after = ctx.state_before
        try:
            seq = self._conn.execute(
                "INSERT INTO events (seq, event_id, type, state_key, sender, depth,"
                " origin_server_ts, membership, json, outlier, rejected, soft_failed,"
                " state_before, state_after, backfilled)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self._backfill_seq() if ctx.backfilled else None,
                 pdu.event_id, pdu.type, pdu.state_key, pdu.sender, pdu.depth,
                 pdu.origin_server_ts, pdu.membership if pdu.is_state() else None, raw,
                 int(ctx.outlier), ctx.rejected, int(ctx.soft_failed), ctx.state_before,
                 ctx.state_after, int(ctx.backfilled)),
            ).lastrowid
        except sqlite3.IntegrityError:
            raise DuplicateEvent(pdu.event_id) from None
        ctx.seq = seq
        self._reads.note_written(seq)
        if new_state:
            ctx.state_after = self._state.new_group(ctx.state_before, {pdu.state_pair: seq})
            self._conn.execute("UPDATE events SET state_after = ? WHERE seq = ?",
                               (ctx.state_after, seq))
        pdu.internal_metadata.update(seq=seq, outlier=ctx.outlier, rejected=ctx.rejected,
                                     soft_failed=ctx.soft_failed, redacted_by=None,
                                     state_before=ctx.state_before,
                                     state_after=ctx.state_after)
        self._events.written(pdu)
        self._conn.executemany("INSERT OR IGNORE INTO event_edges VALUES (?, ?)",
                               [(seq, p) for p in pdu.prev_event_ids])
        self._conn.executemany("INSERT OR IGNORE INTO event_auth VALUES (?, ?)",
                               [(seq, a) for a in pdu.auth_event_ids])
        if ctx.in_timeline and not ctx.backfilled:
            self._forward.event_written(pdu)
        self._joined_timeline(ctx)
        self._apply_pending_redaction(pdu)
        if ctx.txn_key is not None:
            self._conn.execute("INSERT OR IGNORE INTO event_txns VALUES (?, ?)",
                               (ctx.txn_key, pdu.event_id))
        return seq

    def promote_outlier(self, ctx: EventContext) -> None:
        """See ``RoomStore.promote_outlier``."""
        pdu = ctx.pdu
        ctx.seq = self._reads.seq_of(pdu.event_id)
        if ctx.state_after is None:
            ctx.state_after = ctx.state_before
            if pdu.is_state() and ctx.rejected is None:
                ctx.state_after = self._state.new_group(ctx.state_before,
                                                        {pdu.state_pair: ctx.seq})
        self._conn.execute(
            "UPDATE events SET outlier = 0, backfilled = 1, rejected = ?,"
            " state_before = ?, state_after = ? WHERE seq = ?",
            (ctx.rejected, ctx.state_before, ctx.state_after, ctx.seq))
        self._events.clear()  # the cached copy says outlier
        self._joined_timeline(ctx)

    def _backfill_seq(self) -> int:
        """A seq below every other (rowid min() is O(1) in SQLite)."""
        lowest = self._conn.execute("SELECT min(seq) FROM events").fetchone()[0]
        return min(lowest or 0, 0) - 1

    def _joined_timeline(self, ctx: EventContext) -> None:
        """``ctx``'s event was written as (or made) part of the DAG: its indexes."""
        if ctx.outlier:
            return
        self._backward.joined_timeline(ctx.pdu)
        if ctx.in_timeline:
            self._relations.index_event(ctx.seq, ctx.pdu)
            self._search.index_event(ctx.seq, ctx.pdu)
            if ctx.pdu.type == "m.room.redaction" and ctx.pdu.redacts:
                self._redactions.record(ctx.pdu, ctx.redactor_has_power)

    def _apply_pending_redaction(self, pdu: PDU) -> None:
        # ``pdu`` may be a redaction whose target is known, or a target some earlier
        # redaction was waiting for
        target_seq = self._redactions.apply_pending(pdu)
        if target_seq is not None:
            self._relations.forget_event(target_seq)
            self._search.forget_event(target_seq)
            self._events.clear()
