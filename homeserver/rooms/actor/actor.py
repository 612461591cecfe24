"""RoomActor: the one writer of a room (DESIGN.md §3 "The shape").

Every mutation enters the actor's inbox. Items that arrive in the same reactor turn
form a batch: the actor applies them one at a time, in arrival order, each in its own
savepoint (a failing item undoes only itself), and commits the batch in one SQLite
transaction (group commit). Then the outbox step announces every committed but not yet
announced event to the global room stream, and only then fires the requests' Deferreds
(output gate: a client hears "sent" only once its event is durable and visible to
/sync), and then tells the listener, in the same call: the sender's answer is not held
up behind every woken /sync of the room being built (they were, one after the other on
this thread: 10 receivers made a send wait ~5 ms; bench/README.md), and nothing else
runs in between.

Lifecycle (a transition table would be overkill for two flags; the rules are):

- *awake*: store open, inbox served. ``close()`` is legal only when not busy.
- *hibernated* (``closed``): store closed, actor dropped by the registry. A caller still
  holding the object is forwarded to the registry's fresh actor (``reopen``), so stale
  handles stay correct and a room never has two writers.
- An actor hibernates after ``idle_seconds`` with an empty inbox, no flush in progress
  and no live subscribers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from homeserver.crypto.signing import SigningKey
from homeserver.errors import NotFound
from homeserver.events.pdu import PDU
from homeserver.rooms.actor.memory import WarmRooms
from homeserver.rooms.actor.protocols import Announcement, RoomListener, RoomStreamWriter
from homeserver.rooms.actor.room_writer import RemoteOutcome, RoomWriter
from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.storage.state_store import StateKey
from homeserver.rooms.storage.store import RoomStore

log = Logger()

#: announce at most this many events per call (a long replay after a crash)
_ANNOUNCE_CHUNK = 500
_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0

#: a state filter as callers give it: event types (any state key) or (type, key) pairs
TypesFilter = Optional[Iterable["str | tuple[str, Optional[str]]"]]


@dataclasses.dataclass(frozen=True)
class RoomServices:
    """What every actor of this server shares (built once by the registry)."""

    server_name: str
    signing_key: SigningKey
    clock: IReactorTime
    stream_writer: RoomStreamWriter
    listener: RoomListener
    now_ms: Callable[[], int]
    idle_seconds: float
    #: the awake rooms that keep their caches (None: all of them do)
    warm: Optional[WarmRooms] = None
    #: ``run(fn)`` in a thread, returning a Deferred (None: everything inline): a
    #: woken room's WAL is started there before its first commit
    in_thread: Optional[Callable[[Callable[[], None]], Any]] = None


@dataclasses.dataclass
class _Work:
    apply: Callable[[], Any]
    done: defer.Deferred


class RoomActor:
    def __init__(self, store: RoomStore, services: RoomServices, *,
                 room_id: str | None = None, room_version=None,
                 on_idle: Callable[["RoomActor"], None] = lambda actor: actor.close(),
                 reopen: Callable[[str], Awaitable["RoomActor"]] | None = None) -> None:
        """Wrap an open store. ``room_id``/``room_version`` are given for a room being
        created (its DB has no metadata yet); otherwise they are read from the DB."""
        self._store = store
        self._services = services
        self.room_id = room_id or store.room_id
        self.room_version = room_version or store.room_version
        self._writer = RoomWriter(store, self.room_id, self.room_version,
                                  services.server_name, services.signing_key,
                                  services.now_ms)
        self._on_idle = on_idle
        self._reopen = reopen
        self._clock = services.clock
        self._inbox: list[_Work] = []
        self._flush_call: IDelayedCall | None = None
        #: a delayed retry of a failed announce (the outbox is not empty)
        self._retry_call: IDelayedCall | None = None
        self._flushing = False
        self._drained: list[defer.Deferred] = []
        self._retry_delay = _RETRY_FIRST
        self._subscribers = 0
        self._last_active = self._clock.seconds()
        self._idle_call: IDelayedCall | None = None
        self.closed = False
        self._touch()

    # -- lifecycle ----------------------------------------------------------------------
    async def recover(self) -> None:
        """On wake: announce whatever a crash left committed but unannounced.

        If the room stream is unreachable the room still wakes; the outbox retries.
        """
        self._flushing = True
        announced: list[tuple[PDU, int]] = []
        try:
            await self._announce_pending(announced)
        except Exception:
            log.failure("room {room_id}: replay on wake failed", room_id=self.room_id)
            self._flushing = False
            self._retry_announce_later()
        finally:
            self._flushing = False
            self._tell_listener(announced)
            if self._inbox:
                self._schedule_flush()

    @property
    def busy(self) -> bool:
        """Work queued or being committed/announced: not to be closed or evicted."""
        return bool(self._inbox) or self._flushing or self._flush_call is not None

    @property
    def pinned(self) -> bool:
        """Must stay awake: busy, subscribed, or holding unannounced events."""
        return self.busy or bool(self._subscribers) or self._retry_call is not None

    @property
    def subscribers(self) -> int:
        return self._subscribers

    @property
    def resolution_counts(self) -> tuple[int, int]:
        """(state resolutions run, state groups given to them) since the room woke:
        the state-resolution work its events have cost."""
        return self._writer.resolutions, self._writer.groups_resolved

    def subscribe(self) -> None:
        """A live connection now follows this room: it must not hibernate."""
        self._subscribers += 1
        self._touch()

    def unsubscribe(self) -> None:
        if self._subscribers <= 0:
            raise ValueError("unsubscribe without subscribe")
        self._subscribers -= 1
        self._touch()

    def drain(self) -> defer.Deferred:
        """A Deferred firing once the inbox is empty and nothing is being committed."""
        if not self.busy:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._drained.append(d)
        return d

    def close(self, closer: Callable[[Callable[[], None]], Any] | None = None) -> Any:
        """Close the room DB and leave memory. Only legal when not busy.

        ``closer`` runs the file's final close elsewhere (see ``RoomStore.close``,
        whose result this returns)."""
        if self.closed:
            return None
        if self.busy:
            raise RuntimeError(f"closing {self.room_id} with work in progress")
        self.closed = True
        for call in (self._idle_call, self._flush_call, self._retry_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._flush_call = self._retry_call = None
        if self._services.warm is not None:
            self._services.warm.forget(self)
        return self._store.close(closer)

    def shed_caches(self) -> None:
        """Drop what this room caches in memory (see ``rooms.actor.memory.WarmRooms``);
        the next request reads it again from the room DB."""
        if not self.closed:
            self._store.shed_caches()
            self._writer.forget_resolutions()

    def _touch(self) -> None:
        self._last_active = self._clock.seconds()
        if self._services.warm is not None and not self.closed:
            self._services.warm.touch(self)
        if self._idle_call is None and not self.closed:
            self._idle_call = self._clock.callLater(self._services.idle_seconds,
                                                    self._check_idle)

    def _check_idle(self) -> None:
        # one timer, re-armed lazily: activity only records a timestamp
        self._idle_call = None
        if self.closed:
            return
        idle_for = self._clock.seconds() - self._last_active
        if self.pinned:
            self._touch()
        elif idle_for >= self._services.idle_seconds:
            self._on_idle(self)
        else:
            self._idle_call = self._clock.callLater(
                self._services.idle_seconds - idle_for, self._check_idle)

    async def _live(self) -> "RoomActor":
        """The actor to use: self, or the registry's fresh one if this one hibernated."""
        if not self.closed:
            self._touch()
            return self
        if self._reopen is None:
            raise NotFound(f"room {self.room_id} is closed")
        return await self._reopen(self.room_id)

    # -- writes (through the inbox) -----------------------------------------------------
    async def create_event(self, partial: Mapping[str, Any],
                           txn_key: str | None = None) -> PDU:
        """Create, sign, authorise and persist an event from a local user.

        ``partial``: ``type``, ``sender``, ``content``, optional ``state_key`` and
        ``redacts``. ``txn_key`` (e.g. "user/device/txnId") makes retries idempotent.
        Fires after the event is committed and announced; raises AuthError/Forbidden
        (403) if refused, without affecting other requests in the batch.
        """
        actor = await self._live()
        if actor is not self:
            return await actor.create_event(partial, txn_key)
        return await self._submit(lambda: self._writer.create_local(partial, txn_key))

    async def create_events(self, partials: Sequence[Mapping[str, Any]]) -> list[PDU]:
        """Create several events atomically (all or none), in order."""
        actor = await self._live()
        if actor is not self:
            return await actor.create_events(partials)
        return await self._submit(lambda: [self._writer.create_local(p) for p in partials])

    async def create_room_events(self, create: PDU, partials: Sequence[Mapping[str, Any]],
                                 meta: Mapping[str, Any]) -> list[PDU]:
        """For the registry: initialise a new room with its create event and the rest."""
        return await self._submit(
            lambda: self._writer.create_room_events(create, partials, meta))

    async def import_room(self, event: PDU, state: Sequence[PDU], auth_chain: Sequence[PDU],
                          meta: Mapping[str, Any]) -> RemoteOutcome:
        """For the registry: initialise a room joined over federation."""
        return await self._submit(
            lambda: self._writer.import_room(event, state, auth_chain, meta))

    async def apply_remote_pdus(self, pdus: Sequence[PDU], *, outliers: Sequence[PDU] = (),
                                state_before: Mapping[str, Sequence[PDU]] | None = None
                                ) -> list[RemoteOutcome]:
        """Persist events received over federation; see ``RoomWriter.apply_remote``.

        The caller has fetched everything they need (missing prev events, auth chains,
        state) and checked signatures and hashes before handing them over.
        """
        actor = await self._live()
        if actor is not self:
            return await actor.apply_remote_pdus(pdus, outliers=outliers,
                                                 state_before=state_before)
        return await self._submit(
            lambda: self._writer.apply_remote(pdus, outliers, state_before))

    async def backfill_pdus(self, pdus: Sequence[PDU], *, outliers: Sequence[PDU] = (),
                            state_before: Mapping[str, Sequence[PDU]] | None = None
                            ) -> list[RemoteOutcome]:
        """Persist history fetched by ``/backfill`` (``RoomWriter.apply_remote`` with
        ``backfilled``): checked as remote PDUs, stored before the timeline, never
        announced to /sync or other servers. The caller has checked signatures and
        hashes and fetched what the events need, as for :meth:`apply_remote_pdus`."""
        actor = await self._live()
        if actor is not self:
            return await actor.backfill_pdus(pdus, outliers=outliers,
                                             state_before=state_before)
        return await self._submit(
            lambda: self._writer.apply_remote(pdus, outliers, state_before, backfilled=True))

    def _submit(self, apply: Callable[[], Any]) -> defer.Deferred:
        work = _Work(apply, defer.Deferred())
        self._inbox.append(work)
        self._schedule_flush()
        return work.done

    def _schedule_flush(self) -> None:
        # callLater(0): everything queued in this reactor turn joins the batch
        if self._flush_call is None and not self._flushing and not self.closed:
            self._flush_call = self._clock.callLater(0, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_call = None
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()  # this flush announces the backlog too
        self._retry_call = None
        defer.ensureDeferred(self._flush()).addErrback(
            lambda f: log.failure("room {room_id} flush", f, room_id=self.room_id))

    async def _flush(self) -> None:
        self._flushing = True
        try:
            if not self._store.wal_started and self._services.in_thread is not None:
                await self._start_wal()
            batch, self._inbox = self._inbox, []
            done = self._commit(batch)
            announced: list[tuple[PDU, int]] = []
            try:
                await self._announce_pending(announced)
            except Exception:
                # durable but not yet in the stream: retried below and on every later
                # flush or wake; these requests fail (a retry with the same txn_key
                # gets the same event back)
                failure = Failure()
                log.failure("room {room_id}: announce failed", failure, room_id=self.room_id)
                self._flushing = False
                self._retry_announce_later()
                for work, _ in done:
                    work.done.errback(failure)
                self._tell_listener(announced)   # what made it before the failure
                return
            self._retry_delay = _RETRY_FIRST
            for work, result in done:
                work.done.callback(result)
            self._tell_listener(announced)
        finally:
            self._flushing = False
            self._touch()
            if self._inbox:
                self._schedule_flush()
            elif not self.busy:
                waiters, self._drained = self._drained, []
                for d in waiters:
                    d.callback(None)

    async def _start_wal(self) -> None:
        """The first write since the room woke: its WAL file is created (two fsyncs)
        in a thread, not inside this flush's commit on the reactor thread; what
        arrives meanwhile joins the batch."""
        try:
            await self._store.start_wal_in(self._services.in_thread)
        except Exception as e:
            log.info("room {room_id}: WAL not started ahead ({e!r}); the commit does it",
                     room_id=self.room_id, e=e)

    def _commit(self, batch: list[_Work]) -> list[tuple[_Work, Any]]:
        """Apply ``batch`` in one transaction; fail items individually. Returns the
        items that succeeded, with their results (committed when this returns)."""
        done: list[tuple[_Work, Any]] = []
        failed: list[tuple[_Work, Failure]] = []
        try:
            with self._store.transaction():
                if len(batch) == 1:
                    # alone: its failure rolls the transaction back, no savepoint needed
                    try:
                        done.append((batch[0], batch[0].apply()))
                    except Exception:
                        self._writer.forget_resolutions()
                        failed.append((batch[0], Failure()))
                        raise _Refused() from None
                else:
                    for work in batch:
                        try:
                            with self._store.transaction():  # a savepoint per item
                                result = work.apply()
                        except Exception:
                            self._writer.forget_resolutions()
                            failed.append((work, Failure()))
                        else:
                            done.append((work, result))
        except _Refused:
            pass  # its one item failed and is in ``failed``: nothing was written
        except Exception:
            # the commit itself failed: nothing of this batch is durable
            failure = Failure()
            log.failure("room {room_id}: commit failed", failure, room_id=self.room_id)
            self._writer.forget_resolutions()
            failed += [(work, failure) for work, _ in done]
            done = []
        for work, failure in failed:
            work.done.errback(failure)  # they wrote nothing: no need to wait
        return done

    def _retry_announce_later(self) -> None:
        if self._retry_call is None and not self.closed:
            self._retry_call = self._clock.callLater(self._retry_delay, self._retry_announce)
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)

    def _retry_announce(self) -> None:
        self._retry_call = None
        if self._flushing:
            self._retry_announce_later()  # a flush is already announcing
        else:
            self._start_flush()

    async def _announce_pending(self, announced: list[tuple[PDU, int]]) -> None:
        """The outbox: announce every timeline event above ``last_announced_seq``;
        each one announced is added to ``announced`` with its stream position (even
        if a later chunk fails), for :meth:`_tell_listener`."""
        store = self._store
        # 0 = created here and not yet in the rooms index (None: nothing to register)
        if store.get_meta("registered") == 0:
            await self._services.stream_writer.register_room(
                self.room_id, self.room_version.identifier, store.get_meta("creator", ""),
                bool(store.get_meta("is_public", 0)))
            store.set_meta_deferred("registered", 1)
        while True:
            pending = store.timeline_after(store.last_announced_seq, _ANNOUNCE_CHUNK)
            if not pending:
                return
            positions = await self._services.stream_writer.announce(
                [self._announcement(pdu) for pdu in pending])
            store.note_announced(pending[-1].internal_metadata["seq"])
            store.forget_member_changes(pending[-1].internal_metadata["seq"])
            announced.extend(zip(pending, positions))
            if len(pending) < _ANNOUNCE_CHUNK:
                return

    def _tell_listener(self, announced: list[tuple[PDU, int]]) -> None:
        for pdu, position in announced:
            self._services.listener.on_room_event(pdu, position)

    def _announcement(self, pdu: PDU) -> Announcement:
        seq = pdu.internal_metadata["seq"]
        return Announcement(room_id=self.room_id, room_seq=seq,
                            event_id=pdu.event_id, type=pdu.type, state_key=pdu.state_key,
                            sender=pdu.sender,
                            membership=pdu.membership if pdu.is_state() else None,
                            member_changes=self._store.member_changes_at(seq))

    # -- reads (straight from the store: the reactor thread is the lock) ---------------
    async def get_event(self, event_id: str, *, original: bool = False) -> PDU | None:
        """The event (redacted form if redacted), or None if this room does not have it."""
        return (await self._live())._store.get_event(event_id, original=original)

    async def transaction_ids(self, events: Sequence[PDU], user_id: str, scope: str
                              ) -> dict[str, str]:
        """event_id → client transaction ID for those of ``events`` (of this room) that
        ``user_id``'s device ``scope`` sent (``unsigned.transaction_id``)."""
        return (await self._live())._store.transaction_ids(events, user_id, scope)

    async def event_for_txn(self, txn_key: str) -> str | None:
        """The event a committed request with this transaction key created, if any."""
        return (await self._live())._store.event_for_txn(txn_key)

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, PDU]:
        return (await self._live())._store.get_events(event_ids)

    async def current_state(self, types: TypesFilter = None) -> dict[StateKey, PDU]:
        """The current state, optionally narrowed to types or (type, state_key) pairs."""
        return (await self._live())._store.current_state_events(_filter(types))

    async def current_state_ids(self, types: TypesFilter = None) -> dict[StateKey, str]:
        return (await self._live())._store.current_state_ids(_filter(types))

    async def state_at(self, event_id: str, *, after: bool = False,
                       types: TypesFilter = None) -> dict[StateKey, PDU]:
        """The state *before* ``event_id`` (as federation's /state), or after it.

        Raises NotFound if the event is unknown or is an outlier (no state).
        """
        actor = await self._live()
        group = actor._group_at(event_id, after)
        return {} if group is None else actor._store.state_events(group, _filter(types))

    async def state_group_at(self, event_id: str, *, after: bool = False) -> int | None:
        """The state group before (or after) ``event_id``, for callers that look at
        many events sharing a group (see :meth:`state_of_group`). None is the empty
        state before the create event; NotFound as :meth:`state_at`."""
        return (await self._live())._group_at(event_id, after)

    async def state_of_group(self, group: int | None, types: TypesFilter = None
                             ) -> dict[StateKey, PDU]:
        """The state of a group from :meth:`state_group_at`, optionally narrowed."""
        actor = await self._live()
        return {} if group is None else actor._store.state_events(group, _filter(types))

    async def state_ids_at(self, event_id: str, *, after: bool = False,
                           types: TypesFilter = None) -> dict[StateKey, str]:
        actor = await self._live()
        group = actor._group_at(event_id, after)
        return {} if group is None else actor._store.state_ids(group, _filter(types))

    def _group_at(self, event_id: str, after: bool) -> int | None:
        """The state group at ``event_id``; None for the empty state before the create
        event. NotFound if the event is unknown or an outlier (no state known)."""
        groups = self._store.state_groups_of(event_id)
        if groups is None or groups[1] is None:
            raise NotFound(f"no state known at {event_id}")
        return groups[1 if after else 0]

    async def membership(self, user_id: str) -> str | None:
        """``user_id``'s current membership, or None if they never had one."""
        return (await self._live())._store.membership(user_id)

    async def members(self, membership: str | None = None,
                      at_event: str | None = None) -> dict[str, PDU]:
        """user_id → member event, now or at (before) ``at_event``, optionally filtered."""
        actor = await self._live()
        if at_event is None:
            return actor._store.members(membership)
        group = actor._group_at(at_event, False)
        state = {} if group is None else actor._store.state_events(
            group, [("m.room.member", None)])
        return {k: e for (_, k), e in state.items()
                if membership is None or e.membership == membership}

    async def events_since(self, seq: int, limit: int) -> tuple[list[PDU], bool]:
        """Timeline events after room seq ``seq``: the newest ``limit``, newest last,
        and whether some were left out (for /sync's ``limited``)."""
        return (await self._live())._store.events_since(seq, limit)

    async def paginate(self, from_token: str | None, direction: str | Direction,
                       limit: int, to_token: str | None = None
                       ) -> tuple[list[PDU], str | None]:
        """/messages: events in topological order and the token to continue with.

        Tokens are opaque strings (M_INVALID_PARAM if malformed); ``from_token`` None
        starts at the newest (backwards) or oldest (forwards) event. The next token is
        None once the start of the room is reached going backwards.
        """
        actor = await self._live()
        events, token = actor._store.paginate(
            None if from_token is None else TopologicalToken.parse(from_token),
            direction if isinstance(direction, Direction) else Direction.parse(direction),
            max(0, limit),
            None if to_token is None else TopologicalToken.parse(to_token))
        return events, None if token is None else str(token)

    async def token_before(self, event_id: str) -> str:
        """A /messages token just before ``event_id`` (a timeline's prev_batch)."""
        token = (await self._live())._store.token_before(event_id)
        if token is None:
            raise NotFound(f"unknown event {event_id}")
        return str(token)

    async def forward_extremities(self) -> list[str]:
        return [e for e, _ in (await self._live())._store.forward_extremities()]

    async def backward_extremities(self, depth: int, limit: int) -> list[str]:
        """Events the timeline cites from no deeper than ``depth`` but does not hold
        (see ``rooms.storage.backward_extremities``), deepest first: where earlier
        history is to be fetched from. Empty once the history reaches the create
        event."""
        return (await self._live())._store.backward_extremities(depth, limit)

    async def auth_chain(self, event_ids: Iterable[str]) -> list[PDU]:
        return (await self._live())._store.auth_chain(event_ids)

    async def last_seq(self) -> int:
        return (await self._live())._store.last_seq()

    async def event_template(self, partial: Mapping[str, Any]
                             ) -> tuple[dict[str, Any], dict[StateKey, PDU]]:
        """The unsigned event a local ``partial`` would become now, with the auth
        state it would be judged against; writes nothing (``RoomWriter.template``).
        Federation builds make_join/make_leave templates and outgoing invites from it."""
        return (await self._live())._writer.template(partial)

    async def read(self, query: Callable[[RoomStore], Any]) -> Any:
        """Run ``query(store)``, a synchronous read of this room's DB, and return its
        result: for indexes other modules own (``store.relations``, ``store.search``).
        It must not write: writes go through the inbox."""
        return query((await self._live())._store)


class _Refused(Exception):
    """The single item of a batch failed: roll its transaction back."""


def _filter(types: TypesFilter):
    if types is None:
        return None
    return [(t, None) if isinstance(t, str) else t for t in types]
