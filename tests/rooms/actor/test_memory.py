"""Room memory: hibernation hands memory back (the trim runs once closes pause);
only the most recently used awake rooms keep their caches."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.rooms.actor import memory


class MemoryReturnerTests(unittest.TestCase):
    def returner(self, **kwargs) -> tuple[Clock, memory.MemoryReturner, list[float]]:
        clock = Clock()
        returner = memory.MemoryReturner(clock, **kwargs)
        trims: list[float] = []
        returner._trim = lambda: trims.append(clock.seconds())
        return clock, returner, trims

    def test_trims_once_closes_pause(self):
        """Closes half a second apart: one trim, ``delay`` after the last of them."""
        clock, returner, trims = self.returner(delay=1.0, longest=5.0)
        for _ in range(4):          # at 0, 0.5, 1.0, 1.5
            returner.rooms_closed()
            clock.advance(0.5)
        self.assertEqual(trims, [])  # 2.0: the last close was 0.5 s ago
        clock.advance(0.5)          # 2.5: a second of quiet
        self.assertEqual(trims, [2.5])
        clock.advance(60)
        self.assertEqual(trims, [2.5])
        returner.rooms_closed()     # a later close: a new batch
        clock.advance(1)
        self.assertEqual(trims, [2.5, 63.5])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_steady_closes_still_trim_every_longest(self):
        """Rooms that never stop closing are trimmed at least every ``longest``."""
        clock, returner, trims = self.returner(delay=1.0, longest=5.0)
        for _ in range(24):         # a close every half second for 12 s
            returner.rooms_closed()
            clock.advance(0.5)
        self.assertEqual(trims, [5.0, 10.0])
        clock.advance(0.5)          # a second after the last close, at 11.5
        self.assertEqual(trims, [5.0, 10.0, 12.5])

    def test_one_delayed_call_per_batch(self):
        """Many closes schedule one delayed call, not one each."""
        clock, returner, _ = self.returner()
        for _ in range(100):
            returner.rooms_closed()
        self.assertEqual(len(clock.getDelayedCalls()), 1)

    def test_cancel(self):
        """Cancelling (shutdown) leaves no delayed call behind, and later closes
        schedule none."""
        clock, returner, trims = self.returner()
        returner.rooms_closed()
        returner.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        returner.rooms_closed()
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(10)
        self.assertEqual(trims, [])

    def test_pools_left_alone_when_switched_off(self):
        """rooms.release_free_pools: false: the return still collects and trims but
        never looks at CPython's pools."""
        clock = Clock()
        returner = memory.MemoryReturner(clock, free_pools=False)
        looked: list[str] = []
        returner._pools._empty_pools = lambda: looked.append("pools") or []
        trims: list[str] = []
        returner._trim = lambda: trims.append("trim")
        returner.rooms_closed()
        clock.advance(1)
        self.assertEqual((looked, trims), ([], ["trim"]))

    def test_each_return_runs_releasers_then_pools_then_trim(self):
        """Each time memory is given back: the extra releasers (the global DB's page
        cache), CPython's empty pools, glibc's trim, in that order; releasers for
        a server at rest only when no room is awake."""
        awake = [True]
        clock = Clock()
        returner = memory.MemoryReturner(clock, all_asleep=lambda: not awake[0])
        order: list[str] = []
        returner._pools.release = lambda: order.append("pools")
        returner.add_releaser(lambda: order.append("global db"))
        returner.add_releaser(lambda: order.append("stream caches"), when_all_asleep=True)
        returner._trim = lambda: order.append("trim")
        returner.rooms_closed()
        clock.advance(1)
        self.assertEqual(order, ["global db", "pools", "trim"])
        awake[0] = False
        order.clear()
        returner.rooms_closed()
        clock.advance(1)
        self.assertEqual(order, ["global db", "stream caches", "pools", "trim"])

    def test_releaser_finishing_later_trims_again(self):
        """A releaser that frees in another thread (a Deferred) gets a trim of its
        own once it is done; none after shutdown."""
        clock, returner, trims = self.returner()
        returner._pools.release = lambda: 0
        later = [defer.Deferred(), defer.Deferred()]
        returner.add_releaser(lambda: later[len(trims) // 2])
        returner.rooms_closed()
        clock.advance(1)
        self.assertEqual(len(trims), 1)
        later[0].callback(None)
        self.assertEqual(len(trims), 2)
        returner.rooms_closed()
        clock.advance(1)
        returner.cancel()
        later[1].callback(None)
        self.assertEqual(len(trims), 3)

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


class CompactTests(unittest.TestCase):
    def test_compact_shrinks_in_place_and_keeps_contents_and_order(self):
        """A dict, OrderedDict or set emptied after a peak gives its table back and
        stays the same object with the same entries, in the same order."""
        import collections
        import sys

        plain, ordered, members = {}, collections.OrderedDict(), set()
        for i in range(2000):
            plain[f"!r{i}"] = i
            ordered[f"!r{i}"] = i
            members.add(f"!r{i}")
        for i in range(1995):
            del plain[f"!r{i}"]
            del ordered[f"!r{i}"]
            members.discard(f"!r{i}")
        ordered.move_to_end("!r1995")
        before = [sys.getsizeof(c) for c in (plain, ordered, members)]
        same = (plain, ordered, members)
        memory.compact(plain, ordered, members)
        after = [sys.getsizeof(c) for c in same]
        for b, a in zip(before, after):
            self.assertLess(a * 10, b)
        self.assertEqual(list(plain.items()), [(f"!r{i}", i) for i in range(1995, 2000)])
        self.assertEqual(list(ordered), ["!r1996", "!r1997", "!r1998", "!r1999", "!r1995"])
        self.assertEqual(members, {f"!r{i}" for i in range(1995, 2000)})
