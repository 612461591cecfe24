"""MatrixRTC transports we advertise (voip/rtc_transports.py)."""

from __future__ import annotations

from twisted.trial import unittest

from voip.rtc_transports import (
    SFU_TRANSPORT_TYPE, MatrixRtcConfig, parse_matrix_rtc, rtc_transports)

LIVEKIT = {"type": "livekit", "livekit_service_url": "https://lk.example.org"}


class TransportsTests(unittest.TestCase):
    def test_builtin_sfu_first_when_served(self):
        """Our SFU leads the list, its sfu_url the API base on the public URL, but only
        while its routes are served and the operator has not turned it off."""
        config = MatrixRtcConfig(transports=(LIVEKIT,))
        base = "https://matrix.example.org/"
        self.assertEqual(rtc_transports(config, base, sfu_served=True), [
            {"type": SFU_TRANSPORT_TYPE,
             "sfu_url": "https://matrix.example.org/_matrix/client/unstable/org.roomserver.sfu"},
            LIVEKIT])
        self.assertEqual(rtc_transports(config, base, sfu_served=False), [LIVEKIT])
        off = MatrixRtcConfig(transports=(LIVEKIT,), builtin_sfu=False)
        self.assertEqual(rtc_transports(off, base, sfu_served=True), [LIVEKIT])

    def test_parse(self):
        """Synapse's matrix_rtc.transports is read as written; a livekit transport
        without a URL, a transport without a type or a bad builtin_sfu is refused."""
        self.assertEqual(parse_matrix_rtc(None), MatrixRtcConfig())
        self.assertEqual(parse_matrix_rtc({"transports": [LIVEKIT]}).transports, (LIVEKIT,))
        for bad in ({"transports": [{"type": "livekit"}]}, {"transports": [{}]},
                    {"transports": "x"}, {"builtin_sfu": "yes"}, []):
            self.assertRaises(ValueError, parse_matrix_rtc, bad)
