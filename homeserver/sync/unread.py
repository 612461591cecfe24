"""Unread notification counts for /sync's ``unread_notifications`` and
``unread_thread_notifications`` (spec: Client-Server API, "Receiving notifications",
"Threading": "Receipts and unread counts").

The counts come from the push rules' outcome for each event (``homeserver.push``,
stored as notifications): those after the user's read point. The read point of the
main timeline is the later of the user's unthreaded and ``main`` receipts (``m.read``
or ``m.read.private``, whichever is further), of a thread the later of the unthreaded
and that thread's receipts; with no receipt at all, the user's join.

The rows after a read point are cached per (room, user) and kept complete by the
evaluator (:meth:`UnreadCounter.note`), so a sync reads the global DB only for a room
whose read point moved back or that it has not counted before.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import Any, Iterable

from homeserver.store.notifications import Notification
from homeserver.sync.timeline import seq_of

_CACHE_SIZE = 20_000
_MAX_ROWS = 1000
READ_TYPES = ("m.read", "m.read.private")
MAIN = "main"


class _Index:
    """Per thread, the sorted room seqs of the rows and of the highlighting ones: a
    count between two read points is two bisections, not a pass over every unread
    row (a room left unread for a while has hundreds, and each /sync asks)."""

    __slots__ = ("seqs", "highlights")

    def __init__(self, rows: Iterable[Notification]) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.highlights: dict[str, list[int]] = {}
        for r in sorted(rows, key=lambda r: r.room_seq):
            self.add(r, append=True)

    def add(self, r: Notification, *, append: bool = False) -> None:
        thread = r.thread_id or MAIN
        lists = [self.seqs.setdefault(thread, [])]
        if r.highlight:
            lists.append(self.highlights.setdefault(thread, []))
        for seqs in lists:  # a seq not there yet (the caller checks)
            if append or not seqs or seqs[-1] < r.room_seq:
                seqs.append(r.room_seq)
            else:
                bisect.insort(seqs, r.room_seq)

    def threads_upto(self, upper_seq: int) -> list[str]:
        return [t for t, seqs in self.seqs.items() if seqs and seqs[0] <= upper_seq]

    def counts(self, thread: str, after: int, upto: int) -> dict[str, int]:
        def between(seqs: list[int]) -> int:
            if after >= upto:
                return 0
            return max(0, bisect.bisect_right(seqs, upto) - bisect.bisect_right(seqs, after))

        return {"notification_count": between(self.seqs.get(thread, [])),
                "highlight_count": between(self.highlights.get(thread, []))}


@dataclasses.dataclass
class _Rows:
    read_seq: int
    #: room seq → notification, complete for seqs above read_seq
    rows: dict[int, Notification]
    #: built on first use, kept up to date as rows are noted, dropped when rows go
    index: _Index | None = None

    def indexed(self) -> _Index:
        if self.index is None:
            self.index = _Index(self.rows.values())
        return self.index


@dataclasses.dataclass(frozen=True)
class UnreadCounts:
    """``unread_notifications`` and, per thread root, ``unread_thread_notifications``."""

    room: dict[str, int]
    threads: dict[str, dict[str, int]]


def _zero() -> dict[str, int]:
    return {"notification_count": 0, "highlight_count": 0}


async def receipt_read_seq(receipts: Any, actor: Any, user_id: str,
                           thread: str | None) -> int:
    """The room seq of the further of the user's ``m.read`` and ``m.read.private``
    receipts in ``thread`` (None: the unthreaded receipt), or 0 without one."""
    best = 0
    for receipt_type in READ_TYPES:
        receipt = await receipts.get_receipt(actor.room_id, receipt_type, user_id,
                                             thread_id=thread)
        event = await actor.get_event(receipt.event_id) if receipt else None
        if event is not None:
            best = max(best, seq_of(event))
    return best


class UnreadCounter:
    def __init__(self, notifications: Any = None, receipts: Any = None,
                 evaluation: Any = None) -> None:
        """``notifications``: ``store.notifications``; ``receipts``:
        ``store.receipts``; ``evaluation``: the RoomPushEvaluator (to wait for)."""
        self._notifications = notifications
        self._receipts = receipts
        self._evaluation = evaluation
        self._cache: collections.OrderedDict[tuple[str, str], _Rows] = \
            collections.OrderedDict()
        self._generation = 0
        #: (room, user) → room seq → notifications evaluated but not stored yet
        self._pending: dict[tuple[str, str], dict[int, Notification]] = {}

    def note(self, found: list[Notification]) -> None:
        """Evaluator observer: new notifications, perhaps not stored yet (they are
        counted from memory until :meth:`stored`)."""
        self._generation += 1
        for n in found:
            self._pending.setdefault((n.room_id, n.user_id), {})[n.room_seq] = n
        for n in found:
            entry = self._cache.get((n.room_id, n.user_id))
            if entry is None or n.room_seq <= entry.read_seq:
                continue
            if entry.index is not None:
                if n.room_seq in entry.rows:
                    entry.index = None   # replaced: rebuilt on next use
                else:
                    entry.index.add(n)
            entry.rows[n.room_seq] = n
            if len(entry.rows) > _MAX_ROWS:
                del self._cache[(n.room_id, n.user_id)]

    def stored(self, found: list[Notification], _event: Any = None) -> None:
        """Evaluator observer: these notifications are in the global DB now."""
        for n in found:
            key = (n.room_id, n.user_id)
            pending = self._pending.get(key)
            if pending is not None:
                pending.pop(n.room_seq, None)
                if not pending:
                    del self._pending[key]

    def redacted(self, room_id: str, event_id: str) -> None:
        """Evaluator observer: a redacted event's notifications no longer count."""
        self._generation += 1
        for (room, _), entry in list(self._cache.items()):
            if room == room_id:
                entry.rows = {s: r for s, r in entry.rows.items() if r.event_id != event_id}
                entry.index = None
        for (room, user), pending in list(self._pending.items()):
            if room == room_id:
                for seq in [s for s, r in pending.items() if r.event_id == event_id]:
                    del pending[seq]

    async def counts(self, actor: Any, user_id: str, read_seq: int, upper_seq: int, *,
                     threads: bool = False, wait: bool = True) -> UnreadCounts:
        """Counts for events up to ``upper_seq``; ``read_seq`` is the unthreaded read
        point. ``threads``: split threads out (the filter's
        ``unread_thread_notifications``); ``wait``: for the evaluation of the room's
        events up to ``upper_seq`` (a push's badge count does not)."""
        if self._evaluation is not None and wait:
            await self._evaluation.caught_up(actor.room_id, upper_seq)
        index = await self._index(actor.room_id, user_id, read_seq)
        by_thread = {}
        for thread in index.threads_upto(upper_seq):
            point = await self._thread_read_seq(actor, user_id, thread)
            by_thread[thread] = index.counts(thread, point, upper_seq)
        if not threads:
            return UnreadCounts({key: sum(c[key] for c in by_thread.values())
                                 for key in ("notification_count", "highlight_count")}, {})
        per_thread = {t: c for t, c in by_thread.items()
                      if t != MAIN and c["notification_count"]}
        return UnreadCounts(by_thread.get(MAIN, _zero()), per_thread)

    async def _thread_read_seq(self, actor: Any, user_id: str, thread: str) -> int:
        return await receipt_read_seq(self._receipts, actor, user_id, thread)

    async def _index(self, room_id: str, user_id: str, read_seq: int) -> _Index:
        key = (room_id, user_id)
        entry = self._cache.get(key)
        if entry is not None and entry.read_seq <= read_seq:
            self._cache.move_to_end(key)
            if entry.read_seq < read_seq:  # the receipt moved on: forget what it read
                entry.rows = {s: r for s, r in entry.rows.items() if s > read_seq}
                entry.read_seq = read_seq
                entry.index = None
            return entry.indexed()
        rows = await self._rows(room_id, user_id, read_seq)
        entry = self._cache.get(key)
        if entry is not None and entry.rows is rows:
            return entry.indexed()
        return _Index(rows.values())

    async def _rows(self, room_id: str, user_id: str,
                    read_seq: int) -> dict[int, Notification]:
        key = (room_id, user_id)
        generation = self._generation
        found = await self._notifications.in_room_after(user_id, room_id, read_seq, 2 ** 62)
        rows = {r.room_seq: r for r in found}
        rows.update((s, r) for s, r in self._pending.get(key, {}).items() if s > read_seq)
        if generation == self._generation and len(rows) <= _MAX_ROWS:
            # nothing was noted meanwhile, so the rows are complete: keep them
            self._cache[key] = _Rows(read_seq, rows)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return rows
