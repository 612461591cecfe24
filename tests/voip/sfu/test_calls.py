"""voip/sfu/calls.py: a call keeps routing and data path in step; limits hold."""

from __future__ import annotations

from twisted.trial import unittest

from voip.sfu.calls import Call, CallDirectory, CallLimit
from voip.sfu.router import TrackKey


class FakePublication:
    def __init__(self):
        self.outputs = []

    def attach(self, output):
        self.outputs.append(output)

    def detach(self, output):
        if output in self.outputs:
            self.outputs.remove(output)


class CallTest(unittest.TestCase):
    def setUp(self):
        self.call = Call("!room:x")
        self.pub_a, self.pub_b = FakePublication(), FakePublication()
        self.mic_a = self.call.publish("a", "mic", "0", self.pub_a)
        self.mic_b = self.call.publish("b", "mic", "0", self.pub_b)

    def test_subscription_is_one_output(self):
        """Subscribing puts the subscriber's output in the source's fan-out, once."""
        self.call.subscribe("c", "1", self.mic_a, "out-c1")
        self.assertEqual(self.pub_a.outputs, ["out-c1"])

    def test_moving_a_subscription_moves_the_output(self):
        """Re-pointing a transceiver moves its output between publications."""
        self.call.subscribe("c", "1", self.mic_a, "out-c1")
        self.call.subscribe("c", "1", self.mic_b, "out-c1")
        self.assertEqual((self.pub_a.outputs, self.pub_b.outputs), ([], ["out-c1"]))

    def test_unsubscribe_removes_the_output(self):
        """Unsubscribing takes the output out of the fan-out."""
        self.call.subscribe("c", "1", self.mic_a, "out-c1")
        self.call.unsubscribe("c", "1", "out-c1")
        self.assertEqual(self.pub_a.outputs, [])

    def test_removing_a_session_cleans_both_sides(self):
        """A removed session's publications come back to be closed and its outputs
        leave the publications it pulled."""
        self.call.sessions.update({"a": object(), "c": object()})
        self.call.subscribe("c", "1", self.mic_a, "out-c1")
        self.call.subscribe("c", "2", self.mic_b, "out-c2")
        removal, publications = self.call.remove_session("c", {"1": "out-c1", "2": "out-c2"})
        self.assertEqual((self.pub_a.outputs, self.pub_b.outputs), ([], []))
        self.assertEqual(publications, [])
        removal, publications = self.call.remove_session("a", {})
        self.assertEqual((removal.published, publications), ((self.mic_a,), [self.pub_a]))
        self.assertNotIn(TrackKey("a", "mic"), self.call.publications)


class CallDirectoryTest(unittest.TestCase):
    def test_participant_limit(self):
        """A call holds at most max_participants sessions."""
        calls = CallDirectory(max_calls=5, max_participants=2)
        calls.add("!r", "s1", object())
        calls.add("!r", "s2", object())
        with self.assertRaises(CallLimit):
            calls.add("!r", "s3", object())

    def test_call_limit_and_release(self):
        """At most max_calls rooms have a call; an emptied call frees its place."""
        calls = CallDirectory(max_calls=1, max_participants=5)
        calls.add("!r1", "s1", object())
        with self.assertRaises(CallLimit):
            calls.check_admission("!r2")
        calls.remove("s1", {})
        self.assertIsNone(calls.call("!r1"))
        calls.add("!r2", "s2", object())

    def test_find_is_scoped_to_the_room(self):
        """A session is found only through the room whose call it is in."""
        calls = CallDirectory(max_calls=5, max_participants=5)
        session = object()
        calls.add("!r1", "s1", session)
        self.assertIs(calls.find("!r1", "s1")[1], session)
        self.assertIsNone(calls.find("!r2", "s1"))
        self.assertIsNone(calls.find("!r1", "nope"))
