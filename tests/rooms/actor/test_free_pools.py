"""Empty pymalloc pools give their pages back; live objects and later allocations are
untouched (rooms/actor/free_pools.py)."""

import ctypes
import random

from twisted.trial import unittest

from homeserver.rooms.actor import free_pools
from homeserver.rooms.actor.free_pools import FreePools

_WORDS = free_pools.POOL_SIZE // 4


def _garbage_keeping_some(n: int) -> list:
    """Objects of many sizes, mostly freed again: empty pools, and a few kept."""
    rng = random.Random(n)
    made = [(str(i) * rng.randint(1, 40), (i, i + 1), [i] * rng.randint(0, 30))
            for i in range(n)]
    return made[::499]


def _intact(kept: list) -> bool:
    for text, pair, items in kept:
        i = pair[0]
        if pair != (i, i + 1) or set(items) - {i} or text != str(i) * (len(text) // len(str(i))):
            return False
    return True


class ReleaseTests(unittest.TestCase):
    def setUp(self) -> None:
        self.pools = FreePools()
        if not self.pools.enabled:
            raise unittest.SkipTest("not CPython 3.11/3.12 with pymalloc on Linux")

    def test_empty_pools_released_live_objects_intact(self) -> None:
        """Pools emptied by freed objects are released; the objects still alive and
        everything allocated afterwards (reusing those pools) read back as written."""
        kept = _garbage_keeping_some(100_000)
        self.assertGreater(self.pools.release(), 0)
        self.assertTrue(_intact(kept))
        again = _garbage_keeping_some(100_000)   # reuses the released pools
        self.assertTrue(_intact(again) and _intact(kept))
        self.assertGreater(self.pools.release(), 0)
        self.assertTrue(_intact(again) and _intact(kept))

    def test_released_pools_are_not_released_twice(self) -> None:
        """A released pool is marked: the next call skips it."""
        _garbage_keeping_some(100_000)
        first = self.pools.release()
        self.assertLess(self.pools.release(), first)

    def test_layout_not_recognised_disables(self) -> None:
        """If the self-test does not recognise the allocator, nothing is touched."""
        self.patch(free_pools, "_self_test", lambda: False)
        pools = FreePools()
        _garbage_keeping_some(10_000)
        self.assertEqual(pools.release(), 0)
        self.assertFalse(pools.enabled)


class ApplyTests(unittest.TestCase):
    """The check-then-act step on a fake arena: only empty pools are marked and
    advised, each at its pages after the first."""

    def test_only_empty_pools_marked_and_advised(self) -> None:
        buf = ctypes.create_string_buffer(4 * free_pools.POOL_SIZE)
        words = memoryview(buf).cast("B").cast("I")
        start = ctypes.addressof(buf)
        for p, (count, szidx) in enumerate([(0, 3), (2, 3), (0, 5), (0, 0xFFFF)]):
            words[p * _WORDS + free_pools._COUNT] = count
            words[p * _WORDS + free_pools._SZIDX] = szidx
        calls = []
        pools = FreePools.__new__(FreePools)
        pools._madvise = lambda addr, length, advice: calls.append((addr, length, advice)) or 0
        released = pools._apply(words, start, [0, _WORDS, 2 * _WORDS, 3 * _WORDS])
        marks = [words[p * _WORDS + free_pools._SZIDX] for p in range(4)]
        self.assertEqual(marks, [0xFFFF, 3, 0xFFFF, 0xFFFF])
        step = free_pools.POOL_SIZE
        # the pool already marked (0xFFFF before) is empty and marked: advised again,
        # harmless; the used one is not
        self.assertEqual(calls, [(start + p * step + free_pools.PAGE,
                                  step - free_pools.PAGE, 4) for p in (0, 2, 3)])
        self.assertEqual(released, 3)
