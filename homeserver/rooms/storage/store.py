"""RoomStore: one room's own SQLite file (DESIGN.md §4 "Room DB").

It owns the file's connection, its transactions and checkpoints, and composes the
parts that read and write it, each over the same connection and none beginning a
transaction of its own: the metadata (:mod:`.room_meta`, :mod:`.member_changes`),
event reads (:mod:`.event_reads`), event writes (:mod:`.event_writer`), the state as
events (:mod:`.room_state`, over :mod:`.state_store`) and the indexes kept with the
timeline. Its methods are the room actor's one interface to all of them.

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
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.storage import schema
from homeserver.rooms.storage.backward_extremities import BackwardExtremities
from homeserver.rooms.storage.connection import RoomConnection, checkpoint, connect, start_wal
from homeserver.rooms.storage.event_reads import EventReads
from homeserver.rooms.storage.event_rows import DecodedEvents
from homeserver.rooms.storage.event_writer import DuplicateEvent, EventContext, EventWriter
from homeserver.rooms.storage.forward_extremities import ForwardExtremities
from homeserver.rooms.storage.member_changes import MemberChanges
from homeserver.rooms.storage.relations import RelationIndex
from homeserver.rooms.storage.room_meta import RoomMeta
from homeserver.rooms.storage.room_state import RoomState
from homeserver.rooms.storage.search_index import SearchIndex
from homeserver.rooms.storage.state_store import StateFilter, StateGroupStore, StateKey
from homeserver.rooms.storage.timestamps import TimestampLookup

__all__ = ["CHECKPOINT_EVERY", "DuplicateEvent", "EventContext", "RoomStore"]

#: commits between two checkpoints run off the actor's thread (see ``checkpoint_in``)
CHECKPOINT_EVERY = 64
#: the automatic checkpoint left as a backstop once checkpoints run elsewhere (pages)
_BACKSTOP_PAGES = 10_000


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
        #: the WAL file exists with its header written (see ``start_wal_in``)
        self.wal_started = True
        #: runs checkpoints elsewhere (None: SQLite's own, inside a COMMIT)
        self._checkpoint_runner: Callable[[Callable[[], None]], Any] | None = None
        self._uncheckpointed = 0
        self._depth = 0
        # the parts share the connection and these objects, and refer to nothing
        # above them: a closed room is freed by reference counting alone
        self._events = DecodedEvents()
        self._meta = RoomMeta(conn)
        self._member_changes = MemberChanges(self._meta)
        self._reads = EventReads(conn, self._events, self._meta)
        self._forward = ForwardExtremities(conn)
        self._writer = EventWriter(conn, self._events, self._reads, self.state,
                                   self.relations, self.search, self._forward,
                                   self.backward)
        self._room_state = RoomState(conn, self._events, self._meta, self.state,
                                     self._reads)

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
        store = cls(conn, path, full_every)
        # a clean close deleted the WAL; the file reappears empty on the first read,
        # and the first commit writes its header (see start_wal_in)
        try:
            store.wal_started = os.path.getsize(path + "-wal") > 0
        except OSError:
            store.wal_started = False
        return store

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
        if self._meta.deferred and not self._depth:
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

    def start_wal_in(self, run: Callable[[Callable[[], None]], Any]) -> Any:
        """Before the first commit after opening: ``run(fn)`` (e.g. a thread pool;
        returns what ``run`` returns, e.g. a Deferred) writes the WAL's first frame
        from a connection of its own, so that this room's next commit does not pay
        the two fsyncs of creating the file on the caller's thread. None if the WAL
        is there already. If ``fn`` fails (busy), the commit starts the WAL itself."""
        if self.wal_started:
            return None
        self.wal_started = True
        path = self.path
        return run(lambda: start_wal(path))

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
            if self._depth == 1 and self._meta.deferred:
                self._meta.write_deferred()
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
            self.wal_started = True
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
        self._reads.forget()
        self._forward.forget()
        self._meta.forget()
        self.state.forget_interned()

    # -- metadata -----------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        return self._meta.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        """Write now (inside the caller's transaction, or one of its own)."""
        with self._atomic():
            self._meta.write({key: value})

    def set_meta_deferred(self, key: str, value: Any) -> None:
        """Write with the next commit or at close; a crash may lose it (use only for
        values that are safe to recompute, like ``last_announced_seq``)."""
        self._meta.defer(key, value)

    @property
    def room_id(self) -> str:
        return self._meta.get("room_id")

    @property
    def room_version(self) -> RoomVersion:
        return self._meta.room_version

    def initialise(self, room_id: str, room_version: str, **extra: Any) -> None:
        with self._atomic():
            self._meta.write({"room_id": room_id, "room_version": room_version, **extra})

    @property
    def current_state_group(self) -> int | None:
        return self._room_state.current_group

    @property
    def last_announced_seq(self) -> int:
        return self._meta.get("last_announced_seq", 0)

    def note_announced(self, seq: int) -> None:
        """Everything up to ``seq`` is in the room stream (written lazily; replaying a
        few already-announced events after a crash is harmless: announce is idempotent)."""
        if seq > self.last_announced_seq:
            self._meta.defer("last_announced_seq", seq)

    # -- membership changes the room stream must carry besides its events ----------------
    def add_member_changes(self, seq: int, changes: Sequence[tuple[str, str, str]]) -> None:
        """Record, with the event at ``seq`` (in its transaction), current-state
        membership changes that event caused besides its own: ``(user_id, membership,
        event_id)`` from a state resolution. They are announced with it."""
        self._member_changes.add(seq, changes)

    def member_changes_at(self, seq: int) -> tuple[tuple[str, str, str], ...]:
        """The changes :meth:`add_member_changes` recorded with ``seq``."""
        return self._member_changes.at(seq)

    def forget_member_changes(self, upto_seq: int) -> None:
        """Those of events up to ``upto_seq`` are announced (written lazily, like
        ``last_announced_seq``: announcing them again is harmless)."""
        self._member_changes.forget(upto_seq)

    # -- writing ------------------------------------------------------------------------
    def persist(self, contexts: Sequence[EventContext]) -> list[int]:
        """Write decided events in one transaction (or as part of the caller's).

        Fills in each context's ``seq`` and ``state_after``. Updates edges, forward
        extremities, redactions and client transaction keys; current state is the
        caller's decision (``set_current_state``).
        """
        with self._atomic():
            return [self._writer.persist_one(ctx) for ctx in contexts]

    def promote_outlier(self, ctx: EventContext) -> None:
        """Make the stored outlier ``ctx.pdu`` a historical timeline event (backfill
        brought it with the state before it): its seq stays, it is marked
        ``backfilled`` so it is never announced or shown by /sync, forward extremities
        are untouched. Fills in ``ctx.seq`` and ``ctx.state_after``."""
        with self._atomic():
            self._writer.promote_outlier(ctx)

    def set_current_state(self, group: int, changes: dict[StateKey, int | None] | None
                          = None) -> dict[StateKey, int | None]:
        """Make ``group`` the current state. ``changes`` (old current → group) may be
        given when the caller knows them; otherwise they are computed by a diff.
        Returns the changes (state key → event seq, None: removed)."""
        with self._atomic():
            return self._room_state.set_current(group, changes)

    # -- events (see EventReads) --------------------------------------------------------
    def get_event(self, event_id: str, *, original: bool = False) -> PDU | None:
        return self._reads.get_event(event_id, original=original)

    def get_events(self, event_ids: Iterable[str]) -> dict[str, PDU]:
        return self._reads.get_events(event_ids)

    def get_event_by_seq(self, seq: int) -> PDU | None:
        return self._reads.get_event_by_seq(seq)

    def has_event(self, event_id: str) -> bool:
        return self._reads.seq_of(event_id) is not None

    def seq_of(self, event_id: str) -> int | None:
        return self._reads.seq_of(event_id)

    def seqs_for_ids(self, event_ids: Iterable[str]) -> dict[str, int]:
        return self._reads.seqs_for_ids(event_ids)

    def event_for_txn(self, txn_key: str) -> str | None:
        return self._reads.event_for_txn(txn_key)

    def transaction_ids(self, events: Sequence[PDU], user_id: str, scope: str
                        ) -> dict[str, str]:
        return self._reads.transaction_ids(events, user_id, scope)

    def last_seq(self) -> int:
        return self._reads.last_seq()

    def timeline_after(self, seq: int, limit: int | None = None) -> list[PDU]:
        return self._reads.timeline_after(seq, limit)

    def events_since(self, seq: int, limit: int) -> tuple[list[PDU], bool]:
        return self._reads.events_since(seq, limit)

    def paginate(self, from_token: TopologicalToken | None, direction: Direction,
                 limit: int, to_token: TopologicalToken | None = None
                 ) -> tuple[list[PDU], TopologicalToken | None]:
        return self._reads.paginate(from_token, direction, limit, to_token)

    def token_before(self, event_id: str) -> TopologicalToken | None:
        return self._reads.token_before(event_id)

    def token_after(self, event_id: str) -> TopologicalToken | None:
        return self._reads.token_after(event_id)

    def auth_chain(self, event_ids: Iterable[str]) -> list[PDU]:
        return self._reads.auth_chain(event_ids)

    # -- extremities --------------------------------------------------------------------
    def forward_extremities(self, limit: int | None = None) -> list[tuple[str, int]]:
        """See ``ForwardExtremities.deepest``."""
        return self._forward.deepest(limit)

    def backward_extremities(self, depth: int, limit: int) -> list[str]:
        """See ``BackwardExtremities.at_most``."""
        return self.backward.at_most(depth, limit)

    # -- state (see RoomState) ----------------------------------------------------------
    def state_groups_of(self, event_id: str) -> tuple[int | None, int | None] | None:
        return self._room_state.groups_of(event_id)

    def state_ids(self, group: int, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._room_state.ids(group, pairs)

    def current_state_ids(self, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._room_state.current_ids(pairs)

    def state_events(self, group: int, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        return self._room_state.events(group, pairs)

    def current_state_events(self, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        return self._room_state.current_events(pairs)

    def current_event(self, event_type: str, state_key: str = "") -> PDU | None:
        return self._room_state.current_event(event_type, state_key)

    def membership(self, user_id: str) -> str | None:
        return self._room_state.membership(user_id)

    def member_seqs(self, membership: str | None = None) -> dict[str, int]:
        return self._room_state.member_seqs(membership)

    def members(self, membership: str | None = None) -> dict[str, PDU]:
        return self._room_state.members(membership)
