"""load_timeline: the newest events of a seq range, as few reads as it takes."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.sync.timeline import load_timeline


class _Event:
    def __init__(self, seq: int, event_type: str = "m.room.message") -> None:
        self.internal_metadata = {"seq": seq}
        self.type = event_type


class _Actor:
    """A room of ``count`` events (seqs 1..count); records each read's limit."""

    def __init__(self, count: int, types=None) -> None:
        self.events = [_Event(s, (types or {}).get(s, "m.room.message"))
                       for s in range(1, count + 1)]
        self.reads: list[int] = []

    async def last_seq(self) -> int:
        return len(self.events)

    async def events_since(self, seq: int, limit: int):
        self.reads.append(limit)
        after = [e for e in self.events if e.internal_metadata["seq"] > seq]
        return after[-limit:], len(after) > limit


def _load(actor, lower, upper, limit, wanted=lambda e: True):
    return defer.ensureDeferred(load_timeline(actor, lower, upper, limit, wanted))


class LoadTimelineTests(unittest.TestCase):
    def test_full_page_is_one_read(self) -> None:
        """A range holding more than ``limit`` wanted events is read once (limit + 1
        events: enough to tell that the page is limited)."""
        actor = _Actor(50)
        timeline = self.successResultOf(_load(actor, 0, 50, 10))
        self.assertEqual([e.internal_metadata["seq"] for e in timeline.events],
                         list(range(41, 51)))
        self.assertTrue(timeline.limited)
        self.assertEqual(actor.reads, [11])

    def test_exactly_limit_events_is_not_limited(self) -> None:
        actor = _Actor(10)
        timeline = self.successResultOf(_load(actor, 0, 10, 10))
        self.assertEqual(len(timeline.events), 10)
        self.assertFalse(timeline.limited)
        self.assertEqual(actor.reads, [11])

    def test_filter_reads_further_back(self) -> None:
        """With a filter that skips most events, older events are read until ``limit``
        wanted ones are found; events above ``upper`` are left for the next sync."""
        types = {s: "m.room.member" for s in range(1, 61) if s % 5}
        actor = _Actor(60, types)
        timeline = self.successResultOf(
            _load(actor, 0, 55, 3, lambda e: e.type == "m.room.message"))
        self.assertEqual([e.internal_metadata["seq"] for e in timeline.events],
                         [45, 50, 55])
        self.assertTrue(timeline.limited)
        self.assertEqual(len(actor.reads), 2)
