"""Hibernation hands memory back: the trim runs once, a while after rooms close."""

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
