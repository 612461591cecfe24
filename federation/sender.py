"""The outbound federation sender: one durable queue per destination (spec:
Server-Server API, "Transactions", "PDUs", "EDUs"; DESIGN.md §5).

Two readers follow the positioned streams of ``destinations.py`` — the committed room
stream (PDUs) and the federation outbox (durable EDUs) — from their durable positions
and hand each entry to the live queues of the destinations that must get it. Each
destination sends one transaction at a time (≤ 50 PDUs, ≤ 100 EDUs), backs off
exponentially on failure without holding up any other destination, and after a
failure or a restart *catches up*: it re-reads the stream from its own acknowledged
position and sends every entry it missed, in order, until it reaches the reader and
its queue is live again (``transaction_queue.Cursor``). Ephemeral EDUs (typing,
presence) only go to destinations that are up, and are never kept across restarts.

Nothing polls: the readers are woken by the global DB's stream advance listener
(``wake``), the destinations by the readers, and retries by their own timers.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random as random_module
from typing import Any, Awaitable, Callable, Iterable, Mapping

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from federation.client import RemoteError, RemoteHttpError
from federation.destinations import Resolved, Source
from federation.transaction_queue import (
    HEALTHY, MAX_EDUS, MAX_PDUS, Cursor, Phase, RetrySchedule, Trigger, Verdict,
    classify_failure, newest_of_stale, refused_pdus, transaction_body, transition,
)
from homeserver.store.federation_destinations import DestinationProgress

log = Logger()

#: entries read from a stream at once
CHUNK = 100
#: resolved entries kept per stream: destinations catching up over the same range
#: (after an outage of ours, say) resolve each entry once
RESOLVED_CACHE = 2_000
#: the reader's position is written with the first rows of new destinations, else
#: after this many positions (or at stop): re-reading a little after a crash is
#: harmless (a destination skips what it has acknowledged), one write per event is not
SAVE_EVERY = 1_000
#: a reader that failed (the DB, a room) tries again after this long
READER_RETRY_S = 5.0
SEND_PATH = "/_matrix/federation/v1/send/"
#: typing and presence EDUs kept for one destination while a transaction is in flight
MAX_EPHEMERAL = 5 * 100


@dataclasses.dataclass
class _Reader:
    source: Source
    pos: int = 0
    #: the position last written to the DB
    saved: int = 0
    running: bool = False
    again: bool = False
    retry: IDelayedCall | None = None
    #: a read woken by a stream advance, due in the next reactor turn
    woken: IDelayedCall | None = None
    cache: "collections.OrderedDict[int, Resolved | None]" = dataclasses.field(
        default_factory=collections.OrderedDict)


@dataclasses.dataclass
class _Destination:
    name: str
    cursors: dict[str, Cursor]
    retry: RetrySchedule = HEALTHY
    phase: Phase = Phase.IDLE
    #: a row exists in federation_destinations
    persisted: bool = True
    ephemeral: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    timer: IDelayedCall | None = None


@dataclasses.dataclass
class _Batch:
    pdus: list[tuple[int, Mapping[str, Any]]]
    edus: list[Mapping[str, Any]]
    #: streams whose taken entries came from the live queue
    live: set[str]
    #: stream → position a catch-up scan got to
    scanned: dict[str, int]


class FederationSender:
    def __init__(self, *, server_name: str, clock: IReactorTime, client: Any,
                 progress: Any, pdu_source: Source, edu_source: Source,
                 trim_outbox: Callable[[int], Awaitable[Any]] | None = None,
                 max_age_ms: Mapping[str, int] | None = None,
                 random: Callable[[], float] = random_module.random) -> None:
        """``client``: a FederationClient (``put_json``); ``progress``: the
        ``store.federation_destinations`` store; ``trim_outbox(pos)`` deletes the
        outbox entries every destination has got; ``max_age_ms``: stream name → how
        old an entry a catching-up destination still gets in full (see
        :meth:`_catch_up`; absent: no limit)."""
        self._server_name = server_name
        self._clock = clock
        self._client = client
        self._progress = progress
        self._pdu_stream, self._edu_stream = pdu_source.name, edu_source.name
        self._readers = {s.name: _Reader(s) for s in (pdu_source, edu_source)}
        self._trim_outbox = trim_outbox
        self._max_age_ms = dict(max_age_ms or {})
        self._trimmed = 0
        self._random = random
        self._dests: dict[str, _Destination] = {}
        self._txn_prefix = ""
        self._txn_counter = 0
        self._running: set[defer.Deferred] = set()
        self._started = False
        self._stopped = False

    def release_caches(self) -> None:
        """The server is at rest (every room asleep): drop what is cached of recent
        stream entries (resolved destinations; the sources' own caches). A destination
        still catching up resolves its entries again."""
        for reader in self._readers.values():
            reader.cache.clear()
            release = getattr(reader.source, "release_caches", None)
            if release is not None:
                release()

    # -- lifecycle ------------------------------------------------------------------
    def begin(self) -> None:
        """Start in the background (``IService.startService``); ``stop`` cancels it."""
        self._spawn(self.start(), "starting")

    async def start(self) -> None:
        """Load the durable progress, then catch up whatever is behind."""
        readers, dests = await self._progress.load()
        # txnIds must never repeat for a destination (it would answer a new transaction
        # from its cache of the old one): the start time, and random bits for restarts
        # within the same millisecond or after the clock went back
        self._txn_prefix = f"{self._now_ms()}.{os.urandom(4).hex()}."
        for name, reader in self._readers.items():
            if name in readers:
                reader.pos = readers[name]
            else:
                reader.pos = await reader.source.initial_position()
                await self._progress.advance_reader(name, reader.pos)
            reader.saved = reader.pos
        for row in dests.values():
            dest = _Destination(row.destination, {
                s: Cursor(row.acked.get(s, 0), live=row.acked.get(s, 0) >= r.pos)
                for s, r in self._readers.items()},
                RetrySchedule(row.retry_last_ts, row.retry_interval_ms))
            self._dests[dest.name] = dest
            if not all(c.live for c in dest.cursors.values()):
                # behind after a restart: catch up, or wait out a backoff first
                self._back_off(dest) if dest.retry.interval_ms else self._wake(dest)
        self._started = True
        for name in self._readers:
            self.wake(name)

    def stop(self) -> defer.Deferred:
        """Stop sending; fires once the work in flight has stopped."""
        self._stopped = True
        for dest in self._dests.values():
            if dest.timer is not None and dest.timer.active():
                dest.timer.cancel()
        for reader in self._readers.values():
            for call in (reader.retry, reader.woken):
                if call is not None and call.active():
                    call.cancel()
        running = list(self._running)
        for d in running:
            d.cancel()
        # queued now, while the database still runs: MultiService stops its children
        # one after the other without waiting for our Deferred
        saves = [defer.ensureDeferred(save) for save in self._reader_saves()]
        return defer.DeferredList(running + saves, consumeErrors=True)

    def _reader_saves(self) -> list[Awaitable[None]]:
        """Writes of the readers' positions (and of the destinations waiting on
        nothing), so the next start does not re-read what was dispatched."""
        if not self._started:
            return []
        saves = []
        for name, reader in self._readers.items():
            if reader.pos > reader.saved:
                idle = [d.name for d in self._dests.values()
                        if self._waiting_on_nothing(d, name)]
                saves.append(self._save_reader(name, reader.pos, idle))
        return saves

    async def _save_reader(self, name: str, pos: int, idle: list[str]) -> None:
        try:
            await self._progress.advance_reader(name, pos, (), idle)
        except Exception:
            log.failure("federation sender: saving the {stream} position", stream=name)
        else:
            self._readers[name].saved = pos

    def _spawn(self, work: Awaitable[Any], what: str) -> None:
        d = defer.ensureDeferred(work)
        self._running.add(d)

        def done(result: Any) -> Any:
            self._running.discard(d)
            if isinstance(result, Failure) and \
                    not result.check(defer.CancelledError):
                log.failure("federation sender: {what}", result, what=what)
            return None

        d.addBoth(done)

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    # -- the readers ----------------------------------------------------------------
    def on_streams_advanced(self, advanced: Mapping[str, int]) -> None:
        """``Database.add_advance_listener`` callback: a stream we read moved.

        The read waits for the next reactor turn: the advance is published before the
        writers of the group commit resume, and their answers (a client's PUT) should
        not wait for the sender; advances in the same turn make one read."""
        for name in advanced:
            reader = self._readers.get(name)
            if reader is not None and reader.woken is None:
                reader.woken = self._clock.callLater(0, self._woken, reader)

    def _woken(self, reader: _Reader) -> None:
        reader.woken = None
        self.wake(reader.source.name)

    def wake(self, stream: str) -> None:
        """Read ``stream`` from the reader's position (again, if it is reading)."""
        reader = self._readers[stream]
        if not self._started or self._stopped:
            return
        if reader.running:
            reader.again = True
            return
        reader.running = True
        self._spawn(self._read(reader), f"reading {stream}")

    async def _read(self, reader: _Reader) -> None:
        try:
            while not self._stopped:
                reader.again = False
                entries = await reader.source.read(reader.pos, None, CHUNK)
                if not entries:
                    if reader.again:
                        continue
                    return
                await self._dispatch(reader, entries)
                if reader.source.name == self._edu_stream:
                    await self._trim()   # entries that went nowhere can go too
        except defer.CancelledError:
            raise
        except Exception:
            if self._stopped:
                return   # the database stops with us: nothing to retry
            log.failure("federation sender: reading {stream} failed; retrying",
                        stream=reader.source.name)
            reader.retry = self._clock.callLater(
                READER_RETRY_S, lambda: self.wake(reader.source.name))
        finally:
            reader.running = False

    async def _dispatch(self, reader: _Reader, entries: list[tuple[int, Any]]) -> None:
        """Queue a chunk of entries for their destinations. A destination met for the
        first time gets its row (with the reader's position, in one transaction)
        before anything is queued for it, so a crash cannot forget it."""
        name = reader.source.name
        resolved = [(pos, await self._resolve(reader, pos, entry)) for pos, entry in entries]
        first: dict[str, int] = {}
        for pos, res in resolved:
            for d in res.destinations if res else ():
                first.setdefault(d, pos)
        upto = entries[-1][0]
        new = [d for d in first if d not in self._dests or not self._dests[d].persisted]
        rows = [DestinationProgress(d, {
            s: (first[d] - 1 if s == name else
                self._dests[d].cursors[s].acked if d in self._dests else r.pos)
            for s, r in self._readers.items()}) for d in new]
        idle = [d.name for d in self._dests.values() if d.name not in first
                and self._waiting_on_nothing(d, name)]
        if rows or upto - reader.saved >= SAVE_EVERY:
            await self._progress.advance_reader(name, upto, rows, idle)
            reader.saved = upto
        # from here to the end nothing awaits: queues and the reader move together
        for row in rows:
            dest = self._dests.get(row.destination)
            if dest is None:
                self._dests[row.destination] = _Destination(
                    row.destination, {s: Cursor(a) for s, a in row.acked.items()})
            else:
                dest.persisted = True
        for d in idle:
            if self._waiting_on_nothing(self._dests[d], name):
                cursor = self._dests[d].cursors[name]
                cursor.acked = max(cursor.acked, upto)
        for pos, res in resolved:
            for d in res.destinations if res else ():
                cursor = self._dests[d].cursors[name]
                # not live: its catch-up will read this entry; at or below its
                # ack: it had it before a restart made the reader read it again
                if cursor.live and pos > cursor.acked:
                    cursor.queue.append((pos, res.payload))
        reader.pos = upto
        for d in first:
            self._wake(self._dests[d])

    @staticmethod
    def _waiting_on_nothing(dest: _Destination, stream: str) -> bool:
        """Whether everything of ``stream`` the reader gave ``dest`` is delivered: then
        its ack may move with the reader. Not while a transaction is in flight (its
        entries have left the queue but are not acknowledged) nor while catching up."""
        cursor = dest.cursors[stream]
        return dest.persisted and dest.phase is Phase.IDLE and cursor.live \
            and not cursor.queue

    async def _resolve(self, reader: _Reader, pos: int, entry: Any) -> Resolved | None:
        if pos in reader.cache:
            reader.cache.move_to_end(pos)
            return reader.cache[pos]
        res = await reader.source.resolve(entry)
        reader.cache[pos] = res
        while len(reader.cache) > RESOLVED_CACHE:
            reader.cache.popitem(last=False)
        return res

    # -- ephemeral EDUs ---------------------------------------------------------------
    def send_edu(self, destinations: Iterable[str], edu_type: str,
                 content: Mapping[str, Any]) -> None:
        """Send an EDU that is worthless later (typing, presence) to the destinations
        that are up now; one backing off will not get it."""
        if not self._started or self._stopped:
            return
        for name in set(destinations) - {self._server_name}:
            dest = self._dests.get(name)
            if dest is None:
                # unknown so far: its row is written when the reader first queues for it
                dest = self._dests[name] = _Destination(
                    name, {s: Cursor(r.pos) for s, r in self._readers.items()},
                    persisted=False)
            if dest.phase is Phase.BACKOFF:
                continue
            if len(dest.ephemeral) >= MAX_EPHEMERAL:
                del dest.ephemeral[0]   # a slow server: the oldest are worth least
            dest.ephemeral.append({"edu_type": edu_type, "content": dict(content)})
            self._wake(dest)

    # -- one destination ------------------------------------------------------------
    def _wake(self, dest: _Destination) -> None:
        before = dest.phase
        dest.phase = transition(before, Trigger.WAKE)
        if before is Phase.IDLE and not self._stopped:
            self._spawn(self._send_loop(dest), f"sending to {dest.name}")

    def _retry_due(self, dest: _Destination) -> None:
        dest.timer = None
        dest.phase = transition(dest.phase, Trigger.RETRY_DUE)
        self._spawn(self._send_loop(dest), f"sending to {dest.name}")

    def _back_off(self, dest: _Destination) -> None:
        if dest.phase is Phase.IDLE:   # at start-up: enter backoff as if it just failed
            dest.phase = transition(transition(Phase.IDLE, Trigger.WAKE), Trigger.FAILED)
        delay = dest.retry.delay_ms(self._now_ms(), self._random())
        dest.timer = self._clock.callLater(delay / 1000.0, self._retry_due, dest)

    async def _send_loop(self, dest: _Destination) -> None:
        try:
            await self._send_all(dest)
        except defer.CancelledError:
            raise
        except Exception:
            if self._stopped:
                return
            # a DB or room read failed: the durable positions are still right
            log.failure("federation: sending to {dest} failed", dest=dest.name)
            self._failed(dest)

    async def _send_all(self, dest: _Destination) -> None:
        while not self._stopped:
            batch = await self._next_batch(dest)
            if not batch.pdus and not batch.edus:
                if batch.scanned:                 # only catch-up progress to record
                    await self._delivered(dest, batch)
                    continue
                dest.phase = transition(dest.phase, Trigger.SENT)
                return
            verdict = await self._send(dest, batch)
            if verdict is Verdict.RETRY:
                self._failed(dest)
                return
            await self._delivered(dest, batch)

    async def _next_batch(self, dest: _Destination) -> _Batch:
        batch = _Batch([], [], set(), {})
        for stream, limit in ((self._pdu_stream, MAX_PDUS), (self._edu_stream, MAX_EDUS)):
            cursor = dest.cursors[stream]
            if cursor.live:
                items = cursor.take(limit)
                if items:
                    batch.live.add(stream)
            else:
                items, batch.scanned[stream] = await self._catch_up(
                    dest, self._readers[stream], cursor, limit)
            if stream == self._pdu_stream:
                batch.pdus = items
            else:
                batch.edus = [payload for _, payload in items]
        room = MAX_EDUS - len(batch.edus)
        batch.edus += dest.ephemeral[:room]
        del dest.ephemeral[:room]
        return batch

    async def _catch_up(self, dest: _Destination, reader: _Reader, cursor: Cursor,
                        limit: int) -> tuple[list[tuple[int, Any]], int]:
        """Up to ``limit`` entries for ``dest`` after its acknowledged position, by
        re-reading the stream, and the position the scan reached.

        Entries older than the stream's age limit (a destination down for days) are
        not all sent: of a run of them only the newest per ``stale_key`` is, in
        position order (each room's newest event, which the destination completes
        with /get_missing_events and /state_ids, as the spec's catch-up does; each
        user's newest device-list update), and the others are dropped. So a server
        that was down long gets a bounded backlog, and nothing waits for it for ever.
        """
        items: list[tuple[int, Any]] = []
        stale: dict[str, tuple[int, Any]] = {}
        scanned = cursor.acked
        max_age = self._max_age_ms.get(reader.source.name)
        cutoff = None if max_age is None else self._now_ms() - max_age
        while len(items) < limit and scanned < reader.pos:
            upto = reader.pos
            entries = await reader.source.read(scanned, upto, CHUNK)
            for pos, entry in entries:
                res = await self._resolve(reader, pos, entry)
                if res is not None and dest.name in res.destinations:
                    if cutoff is not None and res.ts is not None and res.ts < cutoff:
                        if items:       # send what came before; the run starts next time
                            return items, scanned
                        if res.stale_key is not None:   # a newer one replaces it
                            stale[res.stale_key] = (pos, res.payload)
                    elif stale:         # the run of stale entries ends here
                        return newest_of_stale(stale, limit, scanned)
                    else:
                        items.append((pos, res.payload))
                scanned = pos
                if len(items) == limit:
                    break
            else:
                if len(entries) < CHUNK:
                    scanned = upto     # nothing else up to where the reader was
        if stale:
            return newest_of_stale(stale, limit, scanned)
        return items, scanned

    async def _send(self, dest: _Destination, batch: _Batch) -> Verdict | None:
        self._txn_counter += 1
        txn_id = f"{self._txn_prefix}{self._txn_counter}"
        body = transaction_body(self._server_name, self._now_ms(),
                                [p for _, p in batch.pdus], batch.edus)
        try:
            response = await self._client.put_json(dest.name, SEND_PATH + txn_id, body)
        except RemoteHttpError as e:
            verdict = classify_failure(e.status)
            if verdict is Verdict.DROP:
                log.warn("federation: {dest} refused transaction {txn} ({n} PDUs, {m} "
                         "EDUs) for good: {error}", dest=dest.name, txn=txn_id,
                         n=len(batch.pdus), m=len(batch.edus), error=str(e))
            return verdict
        except RemoteError as e:
            log.info("federation: sending to {dest} failed: {error}", dest=dest.name,
                     error=str(e))
            return Verdict.RETRY
        for event_id, error in refused_pdus(response).items():
            log.warn("federation: {dest} refused {event_id}: {error}", dest=dest.name,
                     event_id=event_id, error=error)
        return None

    def _failed(self, dest: _Destination) -> None:
        """Back off; what was taken from the queues is caught up later from the
        durable positions, and ephemeral EDUs are dropped."""
        if self._stopped:
            return   # cancelled by stop(): not the destination's fault
        dest.phase = transition(dest.phase, Trigger.FAILED)
        dest.retry = dest.retry.after_failure(self._now_ms())
        for cursor in dest.cursors.values():
            cursor.lose_queue()
        dest.ephemeral.clear()
        self._back_off(dest)
        self._spawn(self._save(dest), f"saving {dest.name}")

    async def _delivered(self, dest: _Destination, batch: _Batch) -> None:
        for stream, cursor in dest.cursors.items():
            reader_pos = self._readers[stream].pos
            if stream in batch.scanned:
                cursor.caught_up(batch.scanned[stream], reader_pos)
            elif stream in batch.live:
                cursor.acked = max(cursor.acked, cursor.acked_after_live_send(reader_pos))
        dest.retry = HEALTHY
        await self._save(dest)
        if self._edu_stream in batch.live or self._edu_stream in batch.scanned:
            await self._trim()

    async def _save(self, dest: _Destination) -> None:
        if not dest.persisted or self._stopped:
            return   # it has only had ephemeral EDUs: nothing durable to remember
        await self._progress.save(dest.name, {s: c.acked for s, c in dest.cursors.items()},
                                  dest.retry.last_ts, dest.retry.interval_ms)

    async def _trim(self) -> None:
        """Delete outbox entries every destination has acknowledged."""
        if self._trim_outbox is None or self._stopped:
            return
        low = min([self._readers[self._edu_stream].pos] +
                  [d.cursors[self._edu_stream].acked for d in self._dests.values()
                   if d.persisted])
        if low > self._trimmed:
            self._trimmed = low
            await self._trim_outbox(low)

    # -- for tests and operators ------------------------------------------------------
    def phase_of(self, destination: str) -> Phase | None:
        dest = self._dests.get(destination)
        return None if dest is None else dest.phase

