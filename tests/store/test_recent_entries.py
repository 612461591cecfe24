"""The newest room stream entries held in memory (homeserver/store/recent_entries.py)."""

from __future__ import annotations

import dataclasses

from twisted.trial import unittest

from homeserver.store.recent_entries import RecentEntries


@dataclasses.dataclass(frozen=True)
class Entry:
    pos: int


def entries(*positions: int) -> list[Entry]:
    return [Entry(p) for p in positions]


class RecentEntriesTests(unittest.TestCase):
    def test_nothing_recorded_is_a_miss(self) -> None:
        """Before anything is recorded every read goes to the database."""
        self.assertIsNone(RecentEntries().read(0, None, 10))

    def test_reads_within_the_run(self) -> None:
        """Reads inside the held run answer from memory, bounded by upto and limit."""
        recent = RecentEntries()
        recent.record(entries(5, 6, 7))
        recent.record(entries(8))
        self.assertEqual(recent.read(4, None, 10), entries(5, 6, 7, 8))
        self.assertEqual(recent.read(5, 7, 10), entries(6, 7))
        self.assertEqual(recent.read(4, None, 2), entries(5, 6))
        self.assertEqual(recent.read(8, None, 10), [])

    def test_release_lets_go_and_a_caught_up_reader_stays_in_memory(self) -> None:
        """At rest the entries go (everything is a miss); the next entry starts a new
        run that a reader caught up at the old head reads from memory."""
        recent = RecentEntries()
        recent.record(entries(5, 6, 7))
        recent.release()
        self.assertIsNone(recent.read(4, None, 10))
        self.assertIsNone(recent.read(7, None, 10))
        recent.record(entries(8))
        self.assertEqual(recent.read(7, None, 10), entries(8))
        self.assertIsNone(recent.read(6, None, 10))

    def test_outside_the_run_is_a_miss(self) -> None:
        """Below the first held entry, or past the head, is not answered."""
        recent = RecentEntries()
        recent.record(entries(5, 6))
        self.assertIsNone(recent.read(3, None, 10))
        self.assertIsNone(recent.read(4, 9, 10))

    def test_replays_change_nothing(self) -> None:
        """An old position announced again (a replay) is not recorded."""
        recent = RecentEntries()
        recent.record(entries(5, 6))
        recent.record(entries(5))
        self.assertEqual(recent.read(4, None, 10), entries(5, 6))

    def test_a_gap_starts_a_new_run(self) -> None:
        """A position not following the newest held one drops the run before it."""
        recent = RecentEntries()
        recent.record(entries(5, 6))
        recent.record(entries(9))
        self.assertIsNone(recent.read(6, None, 10))
        self.assertEqual(recent.read(8, None, 10), entries(9))

    def test_forget_makes_the_head_unknown(self) -> None:
        """After a failed announcement nothing is answered until the next record."""
        recent = RecentEntries()
        recent.record(entries(5, 6))
        recent.forget()
        self.assertIsNone(recent.read(6, None, 10))
        recent.record(entries(8))
        self.assertIsNone(recent.read(6, None, 10))
        self.assertEqual(recent.read(7, None, 10), entries(8))

    def test_only_the_newest_are_kept(self) -> None:
        """Past ``keep`` entries the oldest go, and reads before them miss."""
        recent = RecentEntries(keep=3)
        recent.record(entries(1, 2, 3, 4, 5))
        self.assertIsNone(recent.read(1, None, 10))
        self.assertEqual(recent.read(2, None, 10), entries(3, 4, 5))
