"""Unread counts from stored notifications: read points, threads and the cache kept
complete by the evaluator."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.store.notifications import Notification
from homeserver.store.receipts import Receipt
from homeserver.sync.unread import UnreadCounter

ME = "@me:x"
ROOM = "!r:x"


def note(seq: int, highlight: bool = False, thread: str | None = None) -> Notification:
    return Notification(ME, ROOM, seq, f"${seq}", 100 + seq, thread, highlight,
                        ["notify"], 0)


class _Notifications:
    def __init__(self) -> None:
        self.rows: list[Notification] = []
        self.reads = 0

    async def in_room_after(self, user_id, room_id, after_seq, upto_seq):
        self.reads += 1
        return [r for r in self.rows if r.user_id == user_id and r.room_id == room_id
                and after_seq < r.room_seq <= upto_seq]


class _Receipts:
    def __init__(self) -> None:
        self.by_thread: dict[str, str] = {}

    async def get_receipt(self, room_id, receipt_type, user_id, *, thread_id=None):
        event_id = self.by_thread.get(thread_id) if receipt_type == "m.read" else None
        return None if event_id is None else Receipt(room_id, receipt_type, user_id,
                                                     thread_id, event_id, {}, 1)


class _Event:
    def __init__(self, seq: int) -> None:
        self.internal_metadata = {"seq": seq}


class _Actor:
    room_id = ROOM

    async def get_event(self, event_id: str):
        return _Event(int(event_id[1:]))


def counts(n: int, h: int) -> dict:
    return {"notification_count": n, "highlight_count": h}


class CounterTests(unittest.TestCase):
    def setUp(self):
        self.store, self.receipts = _Notifications(), _Receipts()
        self.counter = UnreadCounter(self.store, self.receipts)

    async def test_counts_after_read_point(self):
        """Only notifications after the read point and up to the upper seq count."""
        self.store.rows = [note(1), note(3, highlight=True), note(5)]
        result = await self.counter.counts(_Actor(), ME, 1, 4)
        self.assertEqual(result.room, counts(1, 1))

    async def test_noted_rows_need_no_read(self):
        """Once counted, new notifications noted by the evaluator need no DB read."""
        self.store.rows = [note(2)]
        await self.counter.counts(_Actor(), ME, 0, 2)
        self.store.rows.append(note(4, highlight=True))
        self.counter.note([note(4, highlight=True)])
        result = await self.counter.counts(_Actor(), ME, 0, 4)
        self.assertEqual((result.room, self.store.reads), (counts(2, 1), 1))
        moved = await self.counter.counts(_Actor(), ME, 3, 4)
        self.assertEqual((moved.room, self.store.reads), (counts(1, 1), 1))

    async def test_pending_rows_counted_before_stored(self):
        """Notifications evaluated but not yet in the DB already count."""
        self.counter.note([note(2, highlight=True)])
        result = await self.counter.counts(_Actor(), ME, 0, 2)
        self.assertEqual(result.room, counts(1, 1))
        self.store.rows.append(note(2, highlight=True))
        self.counter.stored([note(2, highlight=True)])
        self.assertEqual((await self.counter.counts(_Actor(), ME, 0, 2)).room, counts(1, 1))

    async def test_threads_split_out(self):
        """With threads asked for, thread notifications are counted per root and
        cleared by that thread's receipt; without, they count in the room."""
        self.store.rows = [note(2), note(3, thread="$1"), note(4, True, thread="$1"),
                           note(5, thread="$9")]
        mixed = await self.counter.counts(_Actor(), ME, 0, 5)
        self.assertEqual(mixed.room, counts(4, 1))
        self.receipts.by_thread["$1"] = "$3"
        split = await self.counter.counts(_Actor(), ME, 0, 5, threads=True)
        self.assertEqual(split.room, counts(1, 0))
        self.assertEqual(split.threads, {"$1": counts(1, 1), "$9": counts(1, 0)})

    async def test_main_receipt_clears_main_only(self):
        """A receipt in the main timeline leaves thread counts alone."""
        self.store.rows = [note(2), note(3, thread="$1")]
        self.receipts.by_thread["main"] = "$2"
        split = await self.counter.counts(_Actor(), ME, 0, 5, threads=True)
        self.assertEqual((split.room, split.threads), (counts(0, 0), {"$1": counts(1, 0)}))

    async def test_counts_agree_with_a_plain_count_as_rows_come_and_go(self):
        """The per-thread index (bisections) gives what counting every row would,
        through notes out of order, read points moving on, receipts in threads and
        redactions."""
        import random

        rng = random.Random(16)
        threads = [None, None, None, "$t1", "$t2"]
        self.store.rows = [note(s, rng.random() < 0.3, rng.choice(threads))
                           for s in range(1, 40, 2)]
        live = {n.room_seq: n for n in self.store.rows}
        read_seq, seq = 0, 41
        for step in range(200):
            action = rng.random()
            if action < 0.4:  # new notifications, sometimes out of order
                new = [note(s, rng.random() < 0.3, rng.choice(threads))
                       for s in (seq + 2, seq + 1)]
                seq += 3
                self.counter.note(new)
                self.store.rows += new
                live.update((n.room_seq, n) for n in new)
            elif action < 0.5:
                read_seq = min(seq, read_seq + rng.randint(0, 6))
            elif action < 0.6:
                self.receipts.by_thread[rng.choice(["$t1", "$t2", "main"])] = \
                    f"${rng.randint(read_seq, seq)}"
            elif action < 0.65 and live:
                gone = live.pop(rng.choice(sorted(live)))
                self.counter.redacted(ROOM, gone.event_id)
                self.store.rows.remove(gone)
            upper = rng.randint(read_seq, seq)
            split = await self.counter.counts(_Actor(), ME, read_seq, upper, threads=True)
            points = {t: int(self.receipts.by_thread.get(t, "$0")[1:])
                      for t in ("main", "$t1", "$t2")}
            expected: dict[str, list] = {}
            for n in live.values():
                thread = n.thread_id or "main"
                if read_seq < n.room_seq <= upper and n.room_seq > points[thread]:
                    expected.setdefault(thread, []).append(n)
            want = {t: counts(len(rs), sum(r.highlight for r in rs))
                    for t, rs in expected.items()}
            self.assertEqual(split.room, want.get("main", counts(0, 0)), step)
            self.assertEqual(split.threads, {t: c for t, c in want.items() if t != "main"},
                             step)
