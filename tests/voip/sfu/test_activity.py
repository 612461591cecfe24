"""voip/sfu/activity.py: speaking and muted from RFC 6464 levels; the bitrate policer."""

from __future__ import annotations

from twisted.trial import unittest

from voip.sfu.activity import (
    MUTE_AFTER_S, SILENT, BitratePolicer, DelayHistogram, TrackActivity,
)


class TrackActivityTest(unittest.TestCase):
    def feed(self, activity, start, levels, step=0.02):
        for i, level in enumerate(levels):
            activity.observe(start + i * step, level)
        return start + (len(levels) - 1) * step

    def test_nothing_received_is_muted(self):
        """A track that never sent is muted and not speaking."""
        activity = TrackActivity()
        self.assertEqual(activity.describe(10.0),
                         {"audioLevel": SILENT, "speaking": False, "muted": True})

    def test_loud_packets_are_speech(self):
        """Levels above the threshold make the track speaking, not muted."""
        activity = TrackActivity()
        end = self.feed(activity, 0.0, [20] * 10)
        self.assertTrue(activity.speaking(end))
        self.assertFalse(activity.muted(end))
        self.assertEqual(activity.level, 20)

    def test_quiet_packets_are_not_speech(self):
        """Background noise (quiet but not silent) is neither speech nor mute."""
        activity = TrackActivity()
        end = self.feed(activity, 0.0, [90] * 10)
        self.assertFalse(activity.speaking(end))
        self.assertFalse(activity.muted(end))

    def test_digital_silence_becomes_muted(self):
        """A second of level-127 packets (a disabled WebRTC track) is muted."""
        activity = TrackActivity()
        end = self.feed(activity, 0.0, [20] * 5 + [SILENT] * 60)
        self.assertTrue(activity.muted(end))
        self.assertFalse(activity.speaking(end))

    def test_no_packets_becomes_muted(self):
        """A track that stops sending is muted once MUTE_AFTER_S passes."""
        activity = TrackActivity()
        end = self.feed(activity, 0.0, [20] * 5)
        self.assertFalse(activity.muted(end + MUTE_AFTER_S / 2))
        self.assertTrue(activity.muted(end + MUTE_AFTER_S * 2))

    def test_no_extension_counts_as_sound(self):
        """Without audio levels a sending track is not reported muted."""
        activity = TrackActivity()
        end = self.feed(activity, 0.0, [None] * 5)
        self.assertFalse(activity.muted(end))
        self.assertFalse(activity.speaking(end))


class BitratePolicerTest(unittest.TestCase):
    def test_within_rate_passes(self):
        """50 packets/s of 100 bytes (40 kbit/s) pass a 64 kbit/s policer."""
        policer = BitratePolicer(64_000)
        self.assertTrue(all(policer.allow(i * 0.02, 100) for i in range(500)))
        self.assertEqual(policer.dropped, 0)

    def test_above_rate_is_dropped(self):
        """At twice the rate about half the packets are dropped after the burst."""
        policer = BitratePolicer(64_000)
        passed = sum(policer.allow(i * 0.02, 400) for i in range(500))  # 160 kbit/s
        self.assertLess(passed, 500 * 0.5)
        self.assertGreater(passed, 500 * 0.3)


class DelayHistogramTest(unittest.TestCase):
    def test_percentiles(self):
        """Quantiles are the upper edge of their 0.1 ms bucket."""
        delays = DelayHistogram()
        for ms in [0.05] * 90 + [2.0] * 9 + [7.5]:
            delays.record(ms / 1000)
        self.assertEqual(delays.percentile_ms(0.5), 0.1)
        self.assertAlmostEqual(delays.percentile_ms(0.99), 2.1)
        self.assertAlmostEqual(delays.percentile_ms(1.0), 7.6)

    def test_empty_and_overflow(self):
        """No packets: no quantiles; beyond 100 ms: reported as None (unbounded)."""
        delays = DelayHistogram()
        self.assertEqual(delays.describe(),
                         {"packets": 0, "delayP50Ms": None, "delayP99Ms": None})
        delays.record(0.5)
        self.assertEqual(delays.describe(),
                         {"packets": 1, "delayP50Ms": None, "delayP99Ms": None})
