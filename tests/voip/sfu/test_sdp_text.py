"""voip/sfu/sdp_text.py: what we check in a client's SDP and change in ours (pure)."""

from __future__ import annotations

from twisted.trial import unittest

from voip.sfu.sdp_text import (SdpError, accept_simulcast, announce, mask_rejected,
                               parse_offer_mids, rejected_mids, simulcast_rids)

OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 10.0.0.2",
    "a=candidate:1 1 udp 2130706431 10.0.0.2 40000 typ host",
    "a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.2 rport 40000",
    "a=mid:0", "a=sendonly", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 useinbandfec=1",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:1", "a=recvonly",
    "a=rtpmap:96 VP8/90000", ""])


class SdpTest(unittest.TestCase):
    def test_offer_mids(self):
        """Each media section's mid with its kind and direction."""
        self.assertEqual(parse_offer_mids(OFFER),
                         {"0": ("audio", "sendonly"), "1": ("video", "recvonly")})

    def test_unparsable(self):
        """Garbage and media-less SDP are SdpError, whatever aiortc's parser raises."""
        for text in ("nonsense", "v=0\r\nm=audio x\r\n", "v=0\r\ns=-\r\n", ""):
            with self.assertRaises(SdpError):
                parse_offer_mids(text)

    def test_public_ip_replaces_host_candidates_only(self):
        """With a public IP, host candidates and c= carry it; srflx lines are kept."""
        out = announce(OFFER, public_ip="203.0.113.9", max_bitrate=64000)
        self.assertIn("203.0.113.9 40000 typ host", out)
        self.assertIn("198.51.100.1 40000 typ srflx raddr 10.0.0.2", out)
        self.assertNotIn("c=IN IP4 10.0.0.2", out)

    def test_bitrate_is_asked_of_opus(self):
        """Opus gets maxaveragebitrate and the audio section b=TIAS; video is left."""
        out = announce(OFFER, public_ip=None, max_bitrate=32000)
        self.assertIn("a=fmtp:111 useinbandfec=1;maxaveragebitrate=32000", out)
        self.assertIn("c=IN IP4 10.0.0.2\r\nb=TIAS:32000\r\n", out)
        self.assertEqual(out.count("b=TIAS"), 1)
        self.assertIn("10.0.0.2 40000 typ host", out)


class RejectedTest(unittest.TestCase):
    def test_rejected_mids(self):
        """A port-0 media section is a rejected (stopped) one."""
        offer = OFFER.replace("m=video 9 ", "m=video 0 ")
        self.assertEqual(rejected_mids(offer), {"1"})
        self.assertEqual(rejected_mids(OFFER), set())

    def test_mask_rejected(self):
        """Rejected mids get port 0 and leave the BUNDLE group; others are untouched."""
        out = mask_rejected(OFFER, {"1"})
        self.assertIn("a=group:BUNDLE 0\r\n", out)
        self.assertIn("m=video 0 UDP/TLS/RTP/SAVPF 96", out)
        self.assertIn("m=audio 9 UDP/TLS/RTP/SAVPF 111", out)
        self.assertEqual(mask_rejected(OFFER, set()), OFFER)

    def test_bitrate_is_asked_of_video(self):
        """With a video maximum, the video section gets b=AS (kbit/s) and b=TIAS."""
        out = announce(OFFER, public_ip=None, max_bitrate=32000, max_video_bitrate=1500000)
        self.assertIn("c=IN IP4 0.0.0.0\r\nb=AS:1500\r\nb=TIAS:1500000\r\n", out)
        self.assertEqual(out.count("b=TIAS"), 2)


SIMULCAST_OFFER = OFFER.replace(
    "a=recvonly", "a=sendonly\r\na=rid:f send\r\na=rid:h send\r\na=rid:q send\r\n"
    "a=simulcast:send f;h;~q")


class SimulcastSdpTest(unittest.TestCase):
    def test_rids_of_an_offer(self):
        """The rids of a=simulcast:send, paused (~) ones included."""
        self.assertEqual(simulcast_rids(SIMULCAST_OFFER), ["f", "h", "q"])
        self.assertEqual(simulcast_rids(OFFER), [])

    def test_answer_receives_the_offered_rids(self):
        """The answer's section of the same mid receives each rid, in order; others
        are untouched."""
        answer = OFFER.replace("a=recvonly", "a=recvonly")
        out = accept_simulcast(SIMULCAST_OFFER, answer)
        video = out[out.index("m=video"):]
        self.assertIn("a=rid:f recv\r\na=rid:h recv\r\na=rid:q recv\r\n"
                      "a=simulcast:recv f;h;q\r\n", video)
        self.assertNotIn("a=rid", out[:out.index("m=video")])
        self.assertEqual(accept_simulcast(OFFER, answer), answer)
