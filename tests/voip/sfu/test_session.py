"""voip/sfu/session.py: where a session's peer connection gathers candidates."""

from __future__ import annotations

import time

from twisted.trial import unittest

from tests.e2e.harness import as_deferred
from voip.sfu.session import Session
from voip.sfu.sfu_config import SfuConfig


class HostAddressesTest(unittest.TestCase):
    async def test_candidates_only_on_configured_addresses(self):
        """With bind_addresses set, our SDP offers host candidates on them only."""
        session = Session("s", user_id="@a:x", device_id=None, room_id="!r:x",
                          config=SfuConfig(bind_addresses=("127.0.0.1",)), ice_servers=[],
                          now=time.monotonic)
        try:
            _mids, offer = await as_deferred(session.offer_outputs(["audio/opus"]))
        finally:
            await as_deferred(session.close())
        hosts = {line.split()[4] for line in offer.split("\r\n")
                 if line.startswith("a=candidate:")}
        self.assertEqual(hosts, {"127.0.0.1"})
