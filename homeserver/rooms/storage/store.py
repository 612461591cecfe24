"""RoomStore: one room's own SQLite file (DESIGN.md §4 "Room DB").

The store is synchronous: sqlite3 on a local file answers in microseconds, and the
room's actor is its only user, on the reactor thread. It never decides anything about
events (auth, state resolution): the actor hands it decided ``EventContext``s and it
writes them. Room DBs are never joined with each other.

Durability: WAL with ``synchronous=NORMAL``. A committed transaction survives a kill of
the process (the WAL is in the OS page cache); only a power loss can drop the last
transactions, the trade SQLite documents for WAL mode.

Checkpoints: SQLite copies the WAL back into the DB file (with two fsyncs) inside
whichever COMMIT crosses ``wal_autocheckpoint`` pages; on a VM disk that stalled the
reactor for milliseconds every ~75 single-event commits and was a third of a commit's
average cost (bench/README.md). With ``checkpoint_in`` the actor runs them on another
thread instead, over a connection of their own, every ``CHECKPOINT_EVERY`` commits
(``PASSIVE``: it never waits for, nor blocks, this connection's writes); the automatic
one stays as a backstop at ``_BACKSTOP_PAGES``. What a commit guarantees is the same
either way: a checkpoint only moves committed pages.

Transactions: ``transaction()`` is re-entrant; the outermost level is one SQLite
transaction (one commit, counted in ``commit_count``), inner levels are savepoints so
one failed item can be undone without losing the batch around it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
from typing import Any, Callable, Iterable, Iterator, Sequence

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion, get_room_version
from homeserver.rooms.rules.pagination import (
    Direction, TopologicalToken, topological_window)
from homeserver.rooms.rules.transactions import txn_id_of
from homeserver.rooms.storage import schema
from homeserver.rooms.storage.backward_extremities import BackwardExtremities
from homeserver.rooms.storage.connection import RoomConnection, checkpoint, connect
from homeserver.rooms.storage.event_rows import EVENT_COLUMNS, DecodedEvents, encode
from homeserver.rooms.storage.relations import RelationIndex
from homeserver.rooms.storage.search_index import SearchIndex
from homeserver.rooms.storage.state_store import StateFilter, StateGroupStore, StateKey
from homeserver.rooms.storage.timestamps import TimestampLookup

#: room_meta key: seq → membership changes announced with that event (JSON)
_MEMBER_CHANGES = "pending_member_changes"
_TIMELINE = "outlier = 0 AND rejected IS NULL AND soft_failed = 0"
#: the timeline as the room stream and /sync know it: no historical (backfilled) events
_LIVE = f"{_TIMELINE} AND backfilled = 0"
#: commits between two checkpoints run off the actor's thread (see ``checkpoint_in``)
CHECKPOINT_EVERY = 64
#: the automatic checkpoint left as a backstop once checkpoints run elsewhere (pages)
_BACKSTOP_PAGES = 10_000


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


class RoomStore:
    """A room's DAG, state and metadata in its own SQLite file."""

    def __init__(self, conn: RoomConnection, path: str, full_every: int) -> None:
        self._conn = conn
        self.path = path
        self.state = StateGroupStore(conn, full_every)
        #: indexes other modules read; kept in step with the timeline by ``persist``
        self.relations = RelationIndex(conn)
        self.search = SearchIndex(conn)
        self.timestamps = TimestampLookup(conn)
        self.backward = BackwardExtremities(conn)
        self.commit_count = 0
        #: runs checkpoints elsewhere (None: SQLite's own, inside a COMMIT)
        self._checkpoint_runner: Callable[[Callable[[], None]], Any] | None = None
        self._uncheckpointed = 0
        self._depth = 0
        self._meta_cache: dict[str, Any] = {}
        #: meta values to write with the next commit (or on close): cheap bookkeeping
        #: such as ``last_announced_seq`` never costs a transaction of its own
        self._deferred_meta: dict[str, Any] = {}
        self._events = DecodedEvents()
        #: the highest seq (None: read it again); every woken /sync asks for it
        self._last_seq: int | None = None
        self._room_version: RoomVersion | None = None

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, *, create: bool = False, full_every: int = 100) -> "RoomStore":
        """Open (and lazily migrate) the room DB at ``path``.

        Raises FileNotFoundError unless the file exists or ``create`` is true.
        """
        if not create and not os.path.exists(path):
            raise FileNotFoundError(path)
        if create:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        conn = connect(path)
        try:
            # A new file holds nothing yet, so switching it to WAL and creating its
            # schema need no fsync (they cost ~20 ms per room otherwise). For an
            # existing file the journal_mode switch is a no-op (WAL is persistent).
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA journal_mode = WAL")
            if not create or conn.execute("PRAGMA user_version").fetchone()[0]:
                conn.execute("PRAGMA synchronous = NORMAL")
            # small per-room page cache: thousands of rooms may be open at once
            conn.execute("PRAGMA cache_size = -256")
            conn.execute("PRAGMA temp_store = MEMORY")
            schema.migrate(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, full_every)

    def close(self, closer: Callable[[Callable[[], None]], Any] | None = None) -> Any:
        """Write deferred bookkeeping and close the file. Idempotent.

        Closing the last connection checkpoints the WAL into the DB with two fsyncs
        (~10 ms on a VM disk). ``closer(fn)``, e.g. ``deferToThreadPool`` on a pool of
        its own, runs that final step off the caller's thread; everything committed is
        already durable, so a close that never runs (shutdown) costs only a checkpoint
        at next open. Returns what ``closer`` returned (None when closed inline or
        already closed).
        """
        if self._conn is None:
            return None
        if self._deferred_meta and not self._depth:
            with self.transaction():
                pass
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        self._events.clear()
        if closer is None:
            conn.close()
            return None
        return closer(conn.close)

    @property
    def closed(self) -> bool:
        return self._conn is None

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint_in(self, run: Callable[[Callable[[], None]], Any]) -> None:
        """From now on, every ``CHECKPOINT_EVERY`` commits hand a WAL checkpoint to
        ``run(fn)`` (e.g. a thread pool); SQLite's automatic checkpoint only backs
        them up. ``fn`` opens a connection of its own, checkpoints what it can without
        waiting (``PASSIVE``) and closes it; it never raises (a checkpoint that cannot
        run now is left to the next). If this room closes meanwhile, closing its last
        connection checkpoints the rest as usual."""
        self._checkpoint_runner = run
        self._uncheckpointed = 0
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_PAGES}")

    # -- transactions -------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction (outermost) or savepoint (nested); rolled back on error."""
        conn = self._conn
        if self._depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute(f"SAVEPOINT sp{self._depth}")
        self._depth += 1
        try:
            yield
            if self._depth == 1 and self._deferred_meta:
                self._write_meta(self._deferred_meta)
                self._deferred_meta = {}
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO sp{self._depth}")
                conn.execute(f"RELEASE sp{self._depth}")
            self._forget_caches()
            raise
        self._depth -= 1
        if self._depth == 0:
            conn.execute("COMMIT")
            self.commit_count += 1
            self._uncheckpointed += 1
            if self._checkpoint_runner is not None \
                    and self._uncheckpointed >= CHECKPOINT_EVERY:
                self._uncheckpointed = 0
                path = self.path
                self._checkpoint_runner(lambda: checkpoint(path))
        else:
            conn.execute(f"RELEASE sp{self._depth}")

    def _atomic(self):
        """For the store's own multi-statement writes: a transaction of their own when
        called alone, nothing extra inside the caller's (an exception still reaches
        the caller's transaction or savepoint, which undoes the partial write)."""
        return self.transaction() if self._depth == 0 else contextlib.nullcontext()

    def shed_caches(self) -> None:
        """Give back what this store caches (decoded events, interned strings, metadata
        and SQLite's page cache); the file stays open. A no-op inside a transaction."""
        if self._conn is None or self._depth:
            return
        self._forget_caches()
        self._conn.execute("PRAGMA shrink_memory")

    def _forget_caches(self) -> None:
        # rows written in the undone scope may be cached; forget everything
        self._events.clear()
        self._last_seq = None
        self._meta_cache.clear()
        self.state.forget_interned()

    # -- metadata -----------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        if key in self._deferred_meta:
            return self._deferred_meta[key]
        if key not in self._meta_cache:
            row = self._conn.execute(
                "SELECT value FROM room_meta WHERE key = ?", (key,)).fetchone()
            self._meta_cache[key] = row[0] if row else None
        value = self._meta_cache[key]
        return default if value is None else value

    def set_meta(self, key: str, value: Any) -> None:
        """Write now (inside the caller's transaction, or one of its own)."""
        with self._atomic():
            self._write_meta({key: value})

    def set_meta_deferred(self, key: str, value: Any) -> None:
        """Write with the next commit or at close; a crash may lose it (use only for
        values that are safe to recompute, like ``last_announced_seq``)."""
        self._deferred_meta[key] = value

    def _write_meta(self, values: dict[str, Any]) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO room_meta (key, value) VALUES (?, ?)",
                               list(values.items()))
        self._meta_cache.update(values)

    @property
    def room_id(self) -> str:
        return self.get_meta("room_id")

    @property
    def room_version(self) -> RoomVersion:
        if self._room_version is None:
            self._room_version = get_room_version(self.get_meta("room_version"))
        return self._room_version

    def initialise(self, room_id: str, room_version: str, **extra: Any) -> None:
        with self._atomic():
            self._write_meta({"room_id": room_id, "room_version": room_version, **extra})

    @property
    def current_state_group(self) -> int | None:
        return self.get_meta("current_state_group")

    @property
    def last_announced_seq(self) -> int:
        return self.get_meta("last_announced_seq", 0)

    def note_announced(self, seq: int) -> None:
        """Everything up to ``seq`` is in the room stream (written lazily; replaying a
        few already-announced events after a crash is harmless: announce is idempotent)."""
        if seq > self.last_announced_seq:
            self.set_meta_deferred("last_announced_seq", seq)

    # -- writing ------------------------------------------------------------------------
    def persist(self, contexts: Sequence[EventContext]) -> list[int]:
        """Write decided events in one transaction (or as part of the caller's).

        Fills in each context's ``seq`` and ``state_after``. Updates edges, forward
        extremities, redactions and client transaction keys; current state is the
        caller's decision (``set_current_state``).
        """
        with self._atomic():
            return [self._persist_one(ctx) for ctx in contexts]

    def _persist_one(self, ctx: EventContext) -> int:
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
        if self._last_seq is not None:
            self._last_seq = max(self._last_seq, seq)
        if new_state:
            ctx.state_after = self.state.new_group(ctx.state_before, {pdu.state_pair: seq})
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
            self._update_extremities(pdu)
        self._joined_timeline(ctx)
        self._apply_pending_redaction(pdu)
        if ctx.txn_key is not None:
            self._conn.execute("INSERT OR IGNORE INTO event_txns VALUES (?, ?)",
                               (ctx.txn_key, pdu.event_id))
        return seq

    def _backfill_seq(self) -> int:
        """A seq below every other (rowid min() is O(1) in SQLite)."""
        lowest = self._conn.execute("SELECT min(seq) FROM events").fetchone()[0]
        return min(lowest or 0, 0) - 1

    def _joined_timeline(self, ctx: EventContext) -> None:
        """``ctx``'s event was written as (or made) part of the DAG: its indexes."""
        if ctx.outlier:
            return
        self.backward.joined_timeline(ctx.pdu)
        if ctx.in_timeline:
            self.relations.index_event(ctx.seq, ctx.pdu)
            self.search.index_event(ctx.seq, ctx.pdu)
            if ctx.pdu.type == "m.room.redaction" and ctx.pdu.redacts:
                self._record_redaction(ctx.pdu, ctx.redactor_has_power)

    def promote_outlier(self, ctx: EventContext) -> None:
        """Make the stored outlier ``ctx.pdu`` a historical timeline event (backfill
        brought it with the state before it): its seq stays, it is marked
        ``backfilled`` so it is never announced or shown by /sync, forward extremities
        are untouched. Fills in ``ctx.seq`` and ``ctx.state_after``."""
        with self._atomic():
            pdu = ctx.pdu
            ctx.seq = self.seq_of(pdu.event_id)
            if ctx.state_after is None:
                ctx.state_after = ctx.state_before
                if pdu.is_state() and ctx.rejected is None:
                    ctx.state_after = self.state.new_group(ctx.state_before,
                                                           {pdu.state_pair: ctx.seq})
            self._conn.execute(
                "UPDATE events SET outlier = 0, backfilled = 1, rejected = ?,"
                " state_before = ?, state_after = ? WHERE seq = ?",
                (ctx.rejected, ctx.state_before, ctx.state_after, ctx.seq))
            self._events.clear()  # the cached copy says outlier
            self._joined_timeline(ctx)

    def backward_extremities(self, depth: int, limit: int) -> list[str]:
        """See ``BackwardExtremities.at_most``."""
        return self.backward.at_most(depth, limit)

    def _update_extremities(self, pdu: PDU) -> None:
        self._conn.executemany("DELETE FROM forward_extremities WHERE event_id = ?",
                               [(p,) for p in pdu.prev_event_ids])
        # an event some known event already points at (backfill) is not an extremity
        referenced = self._conn.execute(
            "SELECT 1 FROM event_edges WHERE prev_event_id = ? LIMIT 1",
            (pdu.event_id,)).fetchone()
        if not referenced:
            self._conn.execute("INSERT OR REPLACE INTO forward_extremities VALUES (?, ?)",
                               (pdu.event_id, pdu.depth))

    def _record_redaction(self, redaction: PDU, has_power: bool) -> None:
        """Remember a redaction; it applies now or when its target arrives.

        Spec (room versions 3+, "Handling redactions"): a redaction applies if its
        sender may redact anyone's events, or the target was sent by the same server.
        """
        self._conn.execute(
            "INSERT OR IGNORE INTO redactions VALUES (?, ?, ?, ?)",
            (redaction.event_id, redaction.redacts, redaction.origin, int(has_power)))

    def _apply_pending_redaction(self, pdu: PDU) -> None:
        # ``pdu`` may be a redaction whose target is known, or a target some earlier
        # redaction was waiting for
        rows = self._conn.execute(
            "SELECT r.redaction_event_id, r.sender_domain, r.has_power, e.sender, e.seq"
            " FROM redactions r JOIN events e ON e.event_id = r.redacts"
            " WHERE (r.redacts = ? OR r.redaction_event_id = ?) AND e.redacted_by IS NULL",
            (pdu.event_id, pdu.event_id)).fetchall()
        for redaction_id, domain, has_power, target_sender, target_seq in rows:
            if has_power or target_sender.split(":", 1)[1] == domain:
                self._conn.execute("UPDATE events SET redacted_by = ? WHERE seq = ?",
                                   (redaction_id, target_seq))
                self.relations.forget_event(target_seq)
                self.search.forget_event(target_seq)
                self._events.clear()
                return

    def set_current_state(self, group: int, changes: dict[StateKey, int | None] | None
                          = None) -> dict[StateKey, int | None]:
        """Make ``group`` the current state. ``changes`` (old current → group) may be
        given when the caller knows them; otherwise they are computed by a diff.
        Returns the changes (state key → event seq, None: removed)."""
        with self._atomic():
            old = self.current_state_group
            if old == group:
                return {}
            if changes is None:
                old_map = self.state.current_map() if old is not None else {}
                changes = self.state.diff(old_map, self.state.group_map(group))
            self.state.change_current(changes)
            self._write_meta({"current_state_group": group})
            return changes

    # -- membership changes the room stream must carry besides its events ----------------
    def add_member_changes(self, seq: int, changes: Sequence[tuple[str, str, str]]) -> None:
        """Record, with the event at ``seq`` (in its transaction), current-state
        membership changes that event caused besides its own: ``(user_id, membership,
        event_id)`` from a state resolution. They are announced with it."""
        pending = self._pending_member_changes()
        pending[str(seq)] = [list(c) for c in changes]
        # written now, so a lazy forget still waiting must not overwrite it at commit
        self._deferred_meta.pop(_MEMBER_CHANGES, None)
        self._write_meta({_MEMBER_CHANGES: json.dumps(pending)})

    def member_changes_at(self, seq: int) -> tuple[tuple[str, str, str], ...]:
        """The changes :meth:`add_member_changes` recorded with ``seq``."""
        return tuple(tuple(c) for c in self._pending_member_changes().get(str(seq), ()))

    def forget_member_changes(self, upto_seq: int) -> None:
        """Those of events up to ``upto_seq`` are announced (written lazily, like
        ``last_announced_seq``: announcing them again is harmless)."""
        pending = self._pending_member_changes()
        kept = {k: v for k, v in pending.items() if int(k) > upto_seq}
        if len(kept) != len(pending):
            self.set_meta_deferred(_MEMBER_CHANGES, json.dumps(kept) if kept else None)

    def _pending_member_changes(self) -> dict[str, list]:
        raw = self.get_meta(_MEMBER_CHANGES)
        return json.loads(raw) if raw else {}

    # -- events -------------------------------------------------------------------------
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
        return self._row_to_pdu(row, original) if row else None

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
        return self._row_to_pdu(row) if row else None

    def _events_by_seqs(self, seqs: Iterable[int]) -> dict[int, PDU]:
        seqs = list(seqs)
        found: dict[int, PDU] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            rows = self._conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            found.update((row[0], self._row_to_pdu(row)) for row in rows)
        return found

    def _row_to_pdu(self, row: tuple, original: bool = False) -> PDU:
        return self._events.from_row(row, self.room_version, original)

    def has_event(self, event_id: str) -> bool:
        return self.seq_of(event_id) is not None

    def seq_of(self, event_id: str) -> int | None:
        row = self._conn.execute(
            "SELECT seq FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None

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
        ids = list(by_id)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._conn.execute(
                "SELECT txn_key, event_id FROM event_txns WHERE event_id IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            for key, event_id in rows:
                txn_id = txn_id_of(key, by_id[event_id], user_id, scope)
                if txn_id is not None:
                    found[event_id] = txn_id
        return found

    def last_seq(self) -> int:
        if self._last_seq is None:
            # a bare max() of the rowid is O(1) in SQLite; coalesce() around it is a scan
            self._last_seq = self._conn.execute(
                "SELECT max(seq) FROM events").fetchone()[0] or 0
        return self._last_seq

    def timeline_after(self, seq: int, limit: int | None = None) -> list[PDU]:
        """Timeline events with a seq above ``seq``, oldest first (for announcing)."""
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND {_LIVE}"
            " ORDER BY seq LIMIT ?", (max(seq, 0), -1 if limit is None else limit))
        return [self._row_to_pdu(row) for row in rows]

    def events_since(self, seq: int, limit: int) -> tuple[list[PDU], bool]:
        """The newest ``limit`` timeline events after ``seq``, newest last, and whether
        older ones after ``seq`` were left out (sync's ``limited``)."""
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND {_LIVE}"
            " ORDER BY seq DESC LIMIT ?", (max(seq, 0), limit + 1)).fetchall()
        limited = len(rows) > limit
        return [self._row_to_pdu(row) for row in reversed(rows[:limit])], limited

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
        events = [self._row_to_pdu(row[:-1]) for row in rows]
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
        return [self._row_to_pdu(row) for row in rows]

    def forward_extremities(self, limit: int | None = None) -> list[tuple[str, int]]:
        """(event_id, depth) of each forward extremity (the ``limit`` first), deepest
        first."""
        return self._conn.execute(
            "SELECT event_id, depth FROM forward_extremities ORDER BY depth DESC, event_id"
            " LIMIT ?", (-1 if limit is None else limit,)).fetchall()

    # -- state --------------------------------------------------------------------------
    def state_groups_of(self, event_id: str) -> tuple[int | None, int | None] | None:
        """(state group before, state group after) ``event_id``; None if unknown."""
        cached = self._events.get(event_id)
        if cached is not None:
            meta = cached.internal_metadata
            return meta["state_before"], meta["state_after"]
        row = self._conn.execute(
            "SELECT state_before, state_after FROM events WHERE event_id = ?",
            (event_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def state_ids(self, group: int, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._seqs_to_ids(self.state.group_map(group, pairs))

    def current_state_ids(self, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._seqs_to_ids(self.state.current_map(pairs))

    def current_state_events(self, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        by_seq = self.state.current_map(pairs)
        events = self._events_by_seqs(by_seq.values())
        return {pair: events[seq] for pair, seq in by_seq.items()}

    def state_events(self, group: int, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        by_seq = self.state.group_map(group, pairs)
        events = self._events_by_seqs(by_seq.values())
        return {pair: events[seq] for pair, seq in by_seq.items()}

    def current_event(self, event_type: str, state_key: str = "") -> PDU | None:
        seq = self.state.current_seq(event_type, state_key)
        return None if seq is None else self.get_event_by_seq(seq)

    def seqs_for_ids(self, event_ids: Iterable[str]) -> dict[str, int]:
        ids = list(event_ids)
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found.update(self._conn.execute(
                f"SELECT event_id, seq FROM events WHERE event_id IN"
                f" ({','.join('?' * len(chunk))})", chunk))
        return found

    def _seqs_to_ids(self, by_seq: dict[StateKey, int]) -> dict[StateKey, str]:
        seqs = list(by_seq.values())
        names: dict[int, str] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            names.update(self._conn.execute(
                f"SELECT seq, event_id FROM events WHERE seq IN ({','.join('?' * len(chunk))})",
                chunk))
        return {pair: names[seq] for pair, seq in by_seq.items()}

    def membership(self, user_id: str) -> str | None:
        """The user's current membership ("join", "invite", …) or None if never any."""
        seq = self.state.current_seq("m.room.member", user_id)
        if seq is None:
            return None
        return self._conn.execute(
            "SELECT membership FROM events WHERE seq = ?", (seq,)).fetchone()[0]

    def member_seqs(self, membership: str | None = None) -> dict[str, int]:
        """user_id → seq of their current member event, optionally one membership only."""
        if membership is None:
            return dict(self.state.current_type_rows("m.room.member"))
        type_id = self.state.lookup_id("m.room.member")
        if type_id is None:
            return {}
        rows = self._conn.execute(
            "SELECT c.state_key_id, c.event_seq FROM current_state c"
            " JOIN events e ON e.seq = c.event_seq"
            " WHERE c.type_id = ? AND e.membership = ?", (type_id, membership))
        return {self.state.string(key_id): seq for key_id, seq in rows}

    def members(self, membership: str | None = None) -> dict[str, PDU]:
        by_user = self.member_seqs(membership)
        events = self._events_by_seqs(by_user.values())
        return {user: events[seq] for user, seq in by_user.items()}
