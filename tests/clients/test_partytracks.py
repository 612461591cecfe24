"""A web app written for Cloudflare Realtime with the npm package ``partytracks``
(0.0.54), pointed at our SFU: two tabs of headless Chromium with a fake microphone,
driven by puppeteer-core, each push their microphone and pull the other's and hear
each other (packets and RFC 6464 audio levels arrive); one closes its pull (partytracks
renegotiates) and the other keeps hearing. A group call of three tabs (conference.mjs)
covers late joins, decoded audio, speaking/muted, a tab leaving and recycled m-lines."""

from __future__ import annotations

import functools
import os
import shutil

from tests.clients.http_thread import HttpThread, QuietHandler
from tests.clients.node_runner import CHROMIUM, require_chromium, run_node
from tests.voip.sfu.call_case import SfuServerCase


class PartyTracksTest(SfuServerCase):
    timeout = 300
    # a TURN server for generate-ice-servers to hand out (none listens there: the
    # tabs connect directly; the group call checks partytracks was given it)
    overrides = {"turn_uris": ["turn:127.0.0.1:9?transport=udp"],
                 "turn_shared_secret": "partytracks-test-secret"}

    def setUp(self):
        require_chromium(self)
        super().setUp()

    def _serve_pages(self) -> str:
        """Build the partytracks pages and serve them; their base URL."""
        page_dir = os.path.abspath(self.mktemp())
        run_node(self, "partytracks/build.mjs", {}, args=(page_dir,))
        self.addCleanup(shutil.rmtree, page_dir, True)
        http = HttpThread(functools.partial(QuietHandler, directory=page_dir))
        self.addCleanup(http.stop)
        return http.url

    def test_two_tabs_hear_each_other(self):
        """partytracks unchanged, prefix pointed at the room's SFU API: each tab
        receives the other's audio, and closing a pulled track renegotiates cleanly."""
        alice, bob = self.register("alice"), self.register("bob")
        room_id = self.room_with(alice, bob)
        out = run_node(self, "partytracks/drive.mjs", {
            "PAGE_URL": self._serve_pages() + "/index.html", "HS_URL": self.server.base_url,
            "ROOM_ID": room_id, "TOKEN_A": alice, "TOKEN_B": bob, "CHROMIUM": CHROMIUM,
        }, server=self.server)
        self.assertEqual(out.splitlines()[-1], "OK")

    def test_group_call_late_join_and_leave(self):
        """Three tabs: a late joiner pulls two tracks in one request, every tab decodes
        every other's audio, the SFU sees one mute, and after one tab closes the other
        two still hear each other, also on a track pushed on a recycled m-line."""
        tokens = [self.register(name) for name in ("alice", "bob", "carol")]
        room_id = self.room_with(*tokens)
        out = run_node(self, "partytracks/conference.mjs", {
            "PAGE_URL": self._serve_pages() + "/conference.html",
            "HS_URL": self.server.base_url, "ROOM_ID": room_id, "TOKENS": ",".join(tokens),
            "TURN_URI": self.overrides["turn_uris"][0], "CHROMIUM": CHROMIUM,
        }, server=self.server)
        self.assertEqual(out.splitlines()[-1], "OK")

    def test_simulcast_layer_choice(self):
        """A tab pushes its camera as simulcast (rids f, h); the other pulls it and
        decodes it, and tracks/update with ``simulcast.preferredRid`` moves it to the
        half-size layer and back, at keyframes, without renegotiating."""
        alice, bob = self.register("alice"), self.register("bob")
        room_id = self.room_with(alice, bob)
        out = run_node(self, "partytracks/simulcast.mjs", {
            "PAGE_URL": self._serve_pages() + "/simulcast.html",
            "HS_URL": self.server.base_url, "ROOM_ID": room_id, "TOKEN_A": alice,
            "TOKEN_B": bob, "CHROMIUM": CHROMIUM,
        }, server=self.server)
        self.assertEqual(out.splitlines()[-1], "OK")
