"""A web app written for Cloudflare Realtime with the npm package ``partytracks``
(0.0.54), pointed at our SFU: two tabs of headless Chromium with a fake microphone,
driven by puppeteer-core, each pushing its microphone and pulling the other's, hear
each other (packets and RFC 6464 audio levels arrive)."""

from __future__ import annotations

import functools
import os
import shutil

from twisted.trial import unittest

from tests.clients.http_thread import HttpThread, QuietHandler
from tests.clients.node_runner import run_node
from tests.clients.test_hydrogen import CHROMIUM
from tests.e2e.harness import ServerProcess

V3 = "/_matrix/client/v3"


class PartyTracksTest(unittest.TestCase):
    timeout = 300
    # a TURN server for generate-ice-servers to hand out (none listens there: the
    # tabs connect directly; the group call checks partytracks was given it)
    overrides = {"turn_uris": ["turn:127.0.0.1:9?transport=udp"],
                 "turn_shared_secret": "partytracks-test-secret"}

    def setUp(self):
        if not os.path.exists(CHROMIUM):
            message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
            if os.environ.get("CI"):
                self.fail(message)
            raise unittest.SkipTest(message)
        self.server = ServerProcess(overrides=self.overrides)
        self.server.start()
        self.addCleanup(self.server.stop)

    def _register(self, name: str) -> str:
        status, body = self.server.request("POST", f"{V3}/register", {
            "username": name, "password": f"{name}-password-1",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def test_two_tabs_hear_each_other(self):
        """partytracks unchanged, prefix pointed at the room's SFU API: each tab
        receives the other's audio."""
        alice, bob = self._register("alice"), self._register("bob")
        status, room = self.server.request("POST", f"{V3}/createRoom",
                                           {"preset": "public_chat"}, token=alice)
        self.assertEqual(status, 200, room)
        status, _ = self.server.request("POST", f"{V3}/join/{room['room_id']}", {}, token=bob)
        self.assertEqual(status, 200)

        page_dir = os.path.abspath(self.mktemp())
        run_node(self, "partytracks/build.mjs", {}, args=(page_dir,))
        self.addCleanup(shutil.rmtree, page_dir, True)
        http = HttpThread(functools.partial(QuietHandler, directory=page_dir))
        self.addCleanup(http.stop)
        out = run_node(self, "partytracks/drive.mjs", {
            "PAGE_URL": http.url + "/index.html", "HS_URL": self.server.base_url,
            "ROOM_ID": room["room_id"], "TOKEN_A": alice, "TOKEN_B": bob,
            "CHROMIUM": CHROMIUM}, server=self.server)
        self.assertIn("OK", out.splitlines()[-1])

    def test_group_call_late_join_and_leave(self):
        """Three tabs: a late joiner pulls two tracks in one request, every tab decodes
        every other's audio, and after one tab closes the other two still do."""
        tokens = [self._register(name) for name in ("alice", "bob", "carol")]
        status, room = self.server.request("POST", f"{V3}/createRoom",
                                           {"preset": "public_chat"}, token=tokens[0])
        self.assertEqual(status, 200, room)
        for token in tokens[1:]:
            status, _ = self.server.request("POST", f"{V3}/join/{room['room_id']}", {},
                                            token=token)
            self.assertEqual(status, 200)
        page_dir = os.path.abspath(self.mktemp())
        run_node(self, "partytracks/build.mjs", {}, args=(page_dir,))
        self.addCleanup(shutil.rmtree, page_dir, True)
        http = HttpThread(functools.partial(QuietHandler, directory=page_dir))
        self.addCleanup(http.stop)
        out = run_node(self, "partytracks/conference.mjs", {
            "PAGE_URL": http.url + "/conference.html", "HS_URL": self.server.base_url,
            "ROOM_ID": room["room_id"], "TOKENS": ",".join(tokens),
            "TURN_URI": self.overrides["turn_uris"][0], "CHROMIUM": CHROMIUM},
            server=self.server)
        self.assertIn("OK", out.splitlines()[-1])
