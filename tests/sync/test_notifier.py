"""The Notifier wakes waiters immediately and times out on the injected clock."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.sync.notifier import WAKE_PER_TURN, Notifier


class NotifierTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.notifier = Notifier(self.clock)

    def test_room_wakes_waiter(self):
        """A waiter watching a room is woken by notify_room in the next reactor turn
        (no time passes)."""
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.assertFalse(d.called)
        self.notifier.notify_room("!r:x")
        self.assertFalse(d.called)  # not inside the call that made the change
        self.clock.advance(0)
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(self.notifier.listener_count, 0)

    def test_other_room_does_not_wake(self):
        """A change in an unwatched room leaves the waiter asleep."""
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.notifier.notify_room("!other:x")
        self.clock.advance(0)
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
        self.clock.advance(0)
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
        self.clock.advance(0)
        self.assertEqual(at_wake, [["$e"]])

    def test_failing_observer_still_wakes(self):
        """An observer that raises is logged; the waiters are woken all the same."""
        def broken(event, pos):
            raise RuntimeError("observer bug")

        self.notifier.add_event_observer(broken)
        d = self.notifier.wait("@a:x", ["!r:x"], 30000)
        self.notifier.on_room_event(_Event("$e", "!r:x"), 7)
        self.clock.advance(0)
        self.assertTrue(d.called)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_waiters_woken_in_the_next_turn_a_few_per_turn(self):
        """Waiters run in the reactor turn after the change, WAKE_PER_TURN at most
        per turn, each once however many changes woke it, in the order woken."""
        turns = _Turns()
        notifier = Notifier(turns)
        order: list[int] = []
        n = WAKE_PER_TURN + 3
        for i in range(n):
            notifier.listen(f"@u{i}:x", ["!r:x"], lambda i=i: order.append(i))
        notifier.notify_room("!r:x")
        notifier.notify_room("!r:x")  # a second change: nobody woken twice
        self.assertEqual(order, [])
        turns.run_one()
        self.assertEqual(len(order), WAKE_PER_TURN)
        turns.run_one()
        self.assertEqual(sorted(order), list(range(n)))
        self.assertEqual(turns.pending, [])

    def test_failing_waiter_does_not_stop_the_others(self):
        """A woken callback that raises is logged; the next ones still run."""
        woken: list[str] = []

        def broken():
            raise RuntimeError("listener bug")

        self.notifier.listen("@a:x", ["!r:x"], broken)
        self.notifier.listen("@b:x", ["!r:x"], lambda: woken.append("b"))
        self.notifier.notify_room("!r:x")
        self.clock.advance(0)
        self.assertEqual(woken, ["b"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class _Turns:
    """A clock whose ``callLater(0, …)`` calls run one at a time, like reactor turns."""

    def __init__(self) -> None:
        self.pending: list = []

    def callLater(self, delay, fn, *args):
        self.pending.append((fn, args))
        return object()  # the delayed call

    def run_one(self) -> None:
        fn, args = self.pending.pop(0)
        fn(*args)


class _Event:
    """What on_room_event reads of an event."""

    def __init__(self, event_id: str, room_id: str) -> None:
        self.event_id, self.room_id = event_id, room_id
        self.type, self.state_key = "m.room.message", None
