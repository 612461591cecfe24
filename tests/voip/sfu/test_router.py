"""voip/sfu/router.py: who receives which track (pure)."""

from __future__ import annotations

from twisted.trial import unittest

from voip.sfu.router import Router, RoutingError, Subscription, TrackKey


class RouterTest(unittest.TestCase):
    def setUp(self):
        self.router = Router()
        self.mic_a = self.router.publish("a", "mic", "0")
        self.mic_b = self.router.publish("b", "mic", "0")

    def test_subscribers_are_exactly_those_who_pulled(self):
        """A publication goes to the transceivers that pulled it and no others."""
        self.router.subscribe("c", "1", self.mic_a)
        self.router.subscribe("b", "3", self.mic_a)
        self.assertEqual(set(self.router.subscribers(self.mic_a)),
                         {Subscription("c", "1", self.mic_a), Subscription("b", "3", self.mic_a)})
        self.assertEqual(self.router.subscribers(self.mic_b), [])

    def test_unknown_track_cannot_be_pulled(self):
        """Pulling a track nobody publishes is refused as unknown_track."""
        with self.assertRaises(RoutingError) as e:
            self.router.subscribe("c", "1", TrackKey("a", "camera"))
        self.assertEqual(e.exception.kind, "unknown_track")

    def test_resubscribing_a_mid_moves_it(self):
        """Pointing a transceiver at another track takes it off the first one."""
        self.router.subscribe("c", "1", self.mic_a)
        self.router.subscribe("c", "1", self.mic_b)
        self.assertEqual(self.router.subscribers(self.mic_a), [])
        self.assertEqual(self.router.subscription("c", "1").source, self.mic_b)

    def test_track_name_is_unique_per_session(self):
        """The same name on another mid of one session is a duplicate."""
        with self.assertRaises(RoutingError) as e:
            self.router.publish("a", "mic", "5")
        self.assertEqual(e.exception.kind, "duplicate_track")
        self.assertEqual(self.router.publish("a", "mic", "0"), self.mic_a)  # idempotent

    def test_unpublish_orphans_its_subscriptions(self):
        """Stopping a publication returns the subscriptions it fed, which are gone."""
        self.router.subscribe("c", "1", self.mic_a)
        key, orphaned = self.router.unpublish("a", "0")
        self.assertEqual((key, orphaned), (self.mic_a, (Subscription("c", "1", self.mic_a),)))
        self.assertIsNone(self.router.subscription("c", "1"))
        self.assertFalse(self.router.is_published(self.mic_a))

    def test_unpublish_unknown_mid(self):
        """Unpublishing a mid that carries nothing is unknown_mid."""
        with self.assertRaises(RoutingError) as e:
            self.router.unpublish("a", "9")
        self.assertEqual(e.exception.kind, "unknown_mid")

    def test_remove_session_undoes_everything(self):
        """A session's removal reports its publications, others' orphaned
        subscriptions and its own pulls, and leaves nothing of it behind."""
        self.router.subscribe("b", "1", self.mic_a)
        self.router.subscribe("a", "1", self.mic_b)
        self.router.subscribe("a", "2", self.mic_a)  # a listens to itself
        removal = self.router.remove_session("a")
        self.assertEqual(removal.published, (self.mic_a,))
        self.assertEqual(removal.orphaned, (Subscription("b", "1", self.mic_a),))
        self.assertEqual(removal.pulled, (Subscription("a", "1", self.mic_b),))
        self.assertEqual(self.router.subscribers(self.mic_b), [])
        self.assertEqual(self.router.published_by("a"), [])
        self.assertEqual(self.router.pulled_by("a"), [])
