"""Room memory: hibernation hands memory back (the trim runs once, a while after
rooms close); only the most recently used awake rooms keep their caches."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.rooms import memory


class MemoryReturnerTests(unittest.TestCase):
    def test_debounced(self):
        """Many closes within the delay cause one collection and one trim."""
        calls = []
        clock = Clock()
        returner = memory.MemoryReturner(clock, delay=5.0)
        returner._trim = lambda: calls.append("trim")
        for _ in range(100):
            returner.rooms_closed()
        self.assertEqual(calls, [])
        clock.advance(5)
        self.assertEqual(calls, ["trim"])
        returner.rooms_closed()
        clock.advance(5)
        self.assertEqual(calls, ["trim", "trim"])

    def test_cancel(self):
        """Cancelling (shutdown) leaves no delayed call behind."""
        clock = Clock()
        returner = memory.MemoryReturner(clock)
        returner.rooms_closed()
        returner.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_glibc_trim_found(self):
        """On glibc the real malloc_trim is found and callable."""
        trim = memory._malloc_trim()
        self.assertIsNotNone(trim)
        trim()


class _Room:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.shed = 0

    def shed_caches(self) -> None:
        self.shed += 1


class WarmRoomsTests(unittest.TestCase):
    def test_least_recently_used_beyond_the_limit_shed(self):
        """The limit most recently touched rooms are warm; touching an older one warms
        it and cools the least recent; a forgotten room is gone without shedding."""
        warm = memory.WarmRooms(2)
        a, b, c = _Room("!a"), _Room("!b"), _Room("!c")
        for room in (a, b, c):
            warm.touch(room)
        self.assertEqual((a.shed, b.shed, c.shed), (1, 0, 0))
        self.assertNotIn(a, warm)
        warm.touch(b)       # b most recent: c is next to go
        warm.touch(a)
        self.assertEqual((a.shed, b.shed, c.shed), (1, 0, 1))
        warm.forget(b)
        self.assertEqual((len(warm), b.shed), (1, 0))
        warm.forget(_Room("!a"))   # another object with the same ID: not this one
        self.assertIn(a, warm)

    def test_limit_must_be_positive(self):
        self.assertRaises(ValueError, memory.WarmRooms, 0)
