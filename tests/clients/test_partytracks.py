"""A web app written for Cloudflare Realtime with the npm package ``partytracks``
(0.0.54), pointed at our SFU: two tabs of headless Chromium with a fake microphone,
driven by puppeteer-core, each push their microphone and pull the other's and hear
each other (packets and RFC 6464 audio levels arrive); one closes its pull (partytracks
renegotiates) and the other keeps hearing."""

from __future__ import annotations

import functools
import os
import shutil

from tests.clients.http_thread import HttpThread, QuietHandler
from tests.clients.node_runner import CHROMIUM, require_chromium, run_node
from tests.voip.sfu.call_case import SfuServerCase


class PartyTracksTest(SfuServerCase):
    timeout = 300

    def setUp(self):
        require_chromium(self)
        super().setUp()

    def test_two_tabs_hear_each_other(self):
        """partytracks unchanged, prefix pointed at the room's SFU API: each tab
        receives the other's audio, and closing a pulled track renegotiates cleanly."""
        alice, bob = self.register("alice"), self.register("bob")
        room_id = self.room_with(alice, bob)
        page_dir = os.path.abspath(self.mktemp())
        run_node(self, "partytracks/build.mjs", {}, args=(page_dir,))
        self.addCleanup(shutil.rmtree, page_dir, True)
        http = HttpThread(functools.partial(QuietHandler, directory=page_dir))
        self.addCleanup(http.stop)
        out = run_node(self, "partytracks/drive.mjs", {
            "PAGE_URL": http.url + "/index.html", "HS_URL": self.server.base_url,
            "ROOM_ID": room_id, "TOKEN_A": alice, "TOKEN_B": bob, "CHROMIUM": CHROMIUM,
        }, server=self.server)
        self.assertEqual(out.splitlines()[-1], "OK")
