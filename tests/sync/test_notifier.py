"""The Notifier wakes waiters immediately and times out on the injected clock."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.sync.notifier import Notifier


class NotifierTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.notifier = Notifier(self.clock)

    def test_room_wakes_waiter(self):
        """A waiter watching a room is woken by notify_room without the clock moving."""
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.assertFalse(d.called)
        self.notifier.notify_room("!r:x")
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(self.notifier.listener_count, 0)

    def test_other_room_does_not_wake(self):
        """A change in an unwatched room leaves the waiter asleep."""
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.notifier.notify_room("!other:x")
        self.assertFalse(d.called)

    def test_timeout(self):
        """A waiter with nothing to wake it answers False after its timeout."""
        d = self.notifier.wait("@a:x", ["!r:x"], 500)
        self.clock.advance(0.4)
        self.assertFalse(d.called)
        self.clock.advance(0.2)
        self.assertFalse(self.successResultOf(d))
        self.assertEqual(self.notifier.listener_count, 0)

    def test_user_wakes(self):
        """notify_user wakes that user's waiters only."""
        d1 = self.notifier.wait("@a:x", [], 30000)
        d2 = self.notifier.wait("@b:x", [], 30000)
        self.notifier.notify_user("@a:x")
        self.assertTrue(d1.called)
        self.assertFalse(d2.called)

    def test_cancel_unregisters(self):
        """Cancelling a wait (client disconnect) removes its registration."""
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.notifier.listener_count, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_observers_hear_an_event_before_waiters_wake(self):
        """A waiter woken by a room event finds the event observers already told (the
        push evaluator's pending work, which unread counts wait for)."""
        seen: list[str] = []
        self.notifier.add_event_observer(lambda event, pos: seen.append(event.event_id))
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        at_wake: list[list[str]] = []
        d.addCallback(lambda _: at_wake.append(list(seen)))
        self.notifier.on_room_event(_Event("$e", "!r:x"), 7)
        self.assertEqual(at_wake, [["$e"]])

    def test_failing_observer_still_wakes(self):
        """An observer that raises is logged; the waiters are woken all the same."""
        def broken(event, pos):
            raise RuntimeError("observer bug")

        self.notifier.add_event_observer(broken)
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.notifier.on_room_event(_Event("$e", "!r:x"), 7)
        self.assertTrue(d.called)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class _Event:
    """What on_room_event reads of an event."""

    def __init__(self, event_id: str, room_id: str) -> None:
        self.event_id, self.room_id = event_id, room_id
        self.type, self.state_key = "m.room.message", None
