"""voip/sfu/video.py: keyframes recognised without decoding, frames gathered whole,
layer switches only at keyframes, one continuous clock per subscriber (pure)."""

from __future__ import annotations

from twisted.trial import unittest

from voip.sfu.video import (H264, VP8, FrameAssembler, KeyframeThrottle, LayerChoice,
                            SimulcastPreference, TimestampRewriter, is_h264_keyframe,
                            is_vp8_keyframe)

# VP8 payload descriptors (RFC 7741 §4.2): X=1 S=1 PID=0, I=1 with a 15-bit picture id
VP8_START = bytes([0x90, 0x80, 0x81, 0x23])
VP8_MIDDLE = bytes([0x80, 0x80, 0x81, 0x23])
VP8_KEY = VP8_START + bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # P bit clear
VP8_DELTA = VP8_START + bytes([0x11, 0x02, 0x00])                   # P bit set


def nal(nal_type: int, body: bytes = b"\x88\x84") -> bytes:
    return bytes([0x60 | nal_type]) + body


class KeyframeTest(unittest.TestCase):
    def test_vp8(self):
        """A VP8 frame start with P clear is a keyframe; P set, or not the start of
        partition 0, is not; short descriptors are not either."""
        self.assertTrue(is_vp8_keyframe(VP8_KEY))
        self.assertTrue(is_vp8_keyframe(bytes([0x10, 0x10])))  # no X: descriptor of 1 byte
        self.assertFalse(is_vp8_keyframe(VP8_DELTA))
        self.assertFalse(is_vp8_keyframe(VP8_MIDDLE + bytes([0x10])))
        self.assertFalse(is_vp8_keyframe(bytes([0x91, 0x80, 0x81, 0x23, 0x10])))  # PID 1
        self.assertFalse(is_vp8_keyframe(VP8_START))
        self.assertFalse(is_vp8_keyframe(b""))

    def test_vp8_descriptor_fields_are_skipped(self):
        """7-bit picture id, TL0PICIDX and TID/KEYIDX bytes are skipped before the
        payload header is read."""
        self.assertTrue(is_vp8_keyframe(bytes([0x90, 0xE0, 0x05, 0x07, 0x40, 0x10])))
        self.assertFalse(is_vp8_keyframe(bytes([0x90, 0xE0, 0x05, 0x07, 0x40, 0x11])))

    def test_h264(self):
        """IDR, SPS and PPS are keyframe NAL units, alone, in a STAP-A, or as the first
        fragment of an FU-A; a non-IDR slice and later FU-A fragments are not."""
        for t in (5, 7, 8):
            self.assertTrue(is_h264_keyframe(nal(t)), t)
        self.assertFalse(is_h264_keyframe(nal(1)))
        stap = bytes([0x78]) + b"\x00\x03" + nal(7) + b"\x00\x03" + nal(8)
        self.assertTrue(is_h264_keyframe(stap))
        stap_delta = bytes([0x78]) + b"\x00\x03" + nal(6) + b"\x00\x03" + nal(1)
        self.assertFalse(is_h264_keyframe(stap_delta))
        self.assertTrue(is_h264_keyframe(bytes([0x7C, 0x85, 0xAA])))   # FU-A start, IDR
        self.assertFalse(is_h264_keyframe(bytes([0x7C, 0x05, 0xAA])))  # FU-A middle
        self.assertFalse(is_h264_keyframe(bytes([0x7C, 0x81, 0xAA])))  # FU-A start, slice
        self.assertFalse(is_h264_keyframe(b""))


class FrameAssemblerTest(unittest.TestCase):
    def test_whole_frames(self):
        """Packets up to the marker make one frame, in order, keyframe flagged."""
        a = FrameAssembler(VP8)
        self.assertIsNone(a.push(1, 3000, False, VP8_KEY))
        frame = a.push(2, 3000, True, VP8_MIDDLE + b"x")
        self.assertEqual(frame.payloads, (VP8_KEY, VP8_MIDDLE + b"x"))
        self.assertTrue(frame.keyframe)
        delta = a.push(3, 6000, True, VP8_DELTA)
        self.assertFalse(delta.keyframe)
        self.assertFalse(a.lost)

    def test_a_gap_drops_the_frame_and_reports_loss(self):
        """A missing packet in a frame drops the frame and sets ``lost``."""
        a = FrameAssembler(VP8)
        a.push(1, 3000, False, VP8_DELTA)
        self.assertIsNone(a.push(3, 3000, True, VP8_MIDDLE))
        self.assertTrue(a.lost)

    def test_a_lost_whole_frame_is_reported(self):
        """A frame missing altogether (a gap between two whole frames) sets ``lost``
        although the next frame is whole."""
        a = FrameAssembler(VP8)
        a.push(1, 3000, True, VP8_DELTA)
        self.assertIsNotNone(a.push(3, 9000, True, VP8_DELTA))
        self.assertTrue(a.lost)

    def test_a_frame_without_its_start_is_dropped(self):
        """A frame whose first packet is not a frame start (its start was lost before
        anything was seen) is dropped; duplicates are ignored."""
        a = FrameAssembler(H264)
        self.assertIsNone(a.push(10, 3000, True, bytes([0x7C, 0x45, 0xAA])))  # FU-A end
        self.assertTrue(a.lost)
        a.lost = False
        self.assertIsNotNone(a.push(11, 6000, True, nal(5)))
        self.assertIsNone(a.push(11, 6000, True, nal(5)))
        self.assertFalse(a.lost)


class LayerChoiceTest(unittest.TestCase):
    def test_start_waits_for_a_keyframe(self):
        """A new subscriber gets nothing until a keyframe of its target."""
        c = LayerChoice()
        self.assertTrue(c.retarget("h"))
        self.assertFalse(c.admit("h", keyframe=False))
        self.assertTrue(c.waiting)
        self.assertTrue(c.admit("h", keyframe=True))
        self.assertTrue(c.admit("h", keyframe=False))
        self.assertFalse(c.admit("q", keyframe=True))

    def test_switch_at_the_target_keyframe_only(self):
        """After a retarget the old layer keeps flowing until the new one's keyframe,
        then only the new one flows."""
        c = LayerChoice()
        c.retarget("h")
        c.admit("h", keyframe=True)
        self.assertTrue(c.retarget("q"))
        self.assertTrue(c.admit("h", keyframe=False))
        self.assertFalse(c.admit("q", keyframe=False))
        self.assertTrue(c.admit("q", keyframe=True))
        self.assertFalse(c.admit("h", keyframe=True))
        self.assertFalse(c.retarget("q"))

    def test_restart_waits_again(self):
        """After restart (a new source) even the same layer waits for a keyframe."""
        c = LayerChoice()
        c.retarget("")
        c.admit("", keyframe=True)
        c.restart()
        self.assertFalse(c.admit("", keyframe=False))
        self.assertTrue(c.admit("", keyframe=True))


class SimulcastPreferenceTest(unittest.TestCase):
    def test_preferred_or_next_in_ascii_order(self):
        """The preferred rid when sent; else the next in ASCII order (wrapping); with
        fallback off, nothing; no preference takes the first; a track without
        simulcast sends its one stream whatever is preferred."""
        self.assertEqual(SimulcastPreference("h").target(["f", "h", "q"]), "h")
        self.assertEqual(SimulcastPreference("h").target(["f", "q"]), "q")
        self.assertEqual(SimulcastPreference("r").target(["f", "q"]), "f")
        self.assertIsNone(SimulcastPreference("h", fallback=False).target(["f", "q"]))
        self.assertEqual(SimulcastPreference().target([""]), "")
        self.assertEqual(SimulcastPreference("h", fallback=False).target([""]), "")
        self.assertIsNone(SimulcastPreference("h").target([]))


class ClockTest(unittest.TestCase):
    def test_timestamps_continue_across_a_switch(self):
        """One source passes through; another continues from the last timestamp plus
        the wall time elapsed; wrapping at 2^32 holds."""
        r = TimestampRewriter(90000)
        self.assertEqual(r.rewrite("a", 1000, 0.0), 1000)
        self.assertEqual(r.rewrite("a", 4000, 1 / 30), 4000)
        self.assertEqual(r.rewrite("b", 2**32 - 10, 2 / 30), 7000)
        self.assertEqual(r.rewrite("b", 2990, 3 / 30), 10000)

    def test_throttle(self):
        """One keyframe request per interval."""
        t = KeyframeThrottle(0.5)
        self.assertEqual([t.allow(x) for x in (0.0, 0.2, 0.6, 0.7)],
                         [True, False, True, False])
