"""voip/sfu/forwarding.py: SfuPeerConnection's negotiation fixes over aiortc (the
forwarding itself is exercised end to end by test_call and test_service)."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription
from twisted.trial import unittest

from tests.e2e.harness import as_deferred
from voip.sfu.forwarding import SfuPeerConnection


class RecycledMlineTest(unittest.TestCase):
    def test_recycled_mline_gets_its_own_transceiver(self):
        """An offer reusing a stopped transceiver's m-line under a new mid (Chromium
        does) gets a fresh transceiver for the new mid; the old one is stopped, gone."""
        return as_deferred(self._recycle())

    async def _recycle(self):
        client, sfu = RTCPeerConnection(), SfuPeerConnection(host_addresses=("127.0.0.1",))
        try:
            for _ in range(2):
                client.addTransceiver("audio", direction="sendonly")
            await client.setLocalDescription(await client.createOffer())
            offer = client.localDescription.sdp
            await sfu.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await sfu.setLocalDescription(await sfu.createAnswer())
            old = next(t for t in sfu.getTransceivers() if t.mid == "1")

            recycled = offer.replace("a=mid:1", "a=mid:3").replace("BUNDLE 0 1", "BUNDLE 0 3")
            await sfu.setRemoteDescription(RTCSessionDescription(recycled, "offer"))
            await sfu.setLocalDescription(await sfu.createAnswer())
            self.assertEqual([t.mid for t in sfu.getTransceivers()], ["0", "3"])
            self.assertTrue(old.stopped)
            self.assertEqual(old.mid, "1")
            self.assertIn("a=mid:3", sfu.localDescription.sdp)
        finally:
            await client.close()
            await sfu.close()
