"""A real web client, Hydrogen (hydrogen-view-sdk 0.3.1, the full app: RootViewModel and
RootView), in headless Chromium driven by puppeteer-core, against the real server.

Bob uses Hydrogen and is given nothing but the server's URL: he logs in, sees alice's
invite, joins, reads her message and one that arrives live, and replies. Alice is driven
over the HTTP API from here; the app and a control endpoint for the browser script
are served from a thread. On failure the step log names the step, and a screenshot
is saved in the test's temp dir (its path is printed).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from urllib.parse import quote

from twisted.trial import unittest

from tests.clients.http_thread import HttpThread, QuietHandler
from tests.clients.node_runner import CHROMIUM, require_chromium, run_node
from tests.e2e.harness import ServerProcess


class _AppHandler(QuietHandler):
    """Serves the built app, plus what the browser script asks of the other side:
    ``POST /_control/send`` makes alice send a message now (its body is answered),
    ``GET /_control/messages`` lists the bodies alice sees in the room."""

    alice: "_Alice"

    def do_POST(self):
        if self.path != "/_control/send":
            return self.send_json(404, b"{}")
        sent = self.alice.send("are you there, bob?")
        self.send_json(200, json.dumps({"body": sent}).encode())

    def do_GET(self):
        if self.path == "/_control/messages":
            return self.send_json(200, json.dumps(self.alice.bodies()).encode())
        super().do_GET()


class _Alice:
    """The other side, over the Client-Server API."""

    def __init__(self, server: ServerProcess, token: str, room_id: str) -> None:
        self._server, self._token, self.room_id = server, token, room_id
        self._txn = 0

    def send(self, body: str) -> str:
        self._txn += 1
        status, answer = self._server.request(
            "PUT", f"/_matrix/client/v3/rooms/{quote(self.room_id)}/send/m.room.message/"
                   f"h{self._txn}", {"msgtype": "m.text", "body": body}, token=self._token)
        if status != 200:
            raise RuntimeError(f"alice's send answered {status}: {answer}")
        return body

    def bodies(self) -> list[str]:
        status, answer = self._server.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(self.room_id)}/messages?dir=b&limit=50",
            token=self._token)
        if status != 200:
            raise RuntimeError(f"/messages answered {status}: {answer}")
        return [e["content"].get("body") for e in answer["chunk"]
                if e["type"] == "m.room.message"]


class HydrogenScenario(unittest.TestCase):
    timeout = 300

    def setUp(self):
        require_chromium(self)
        self.server = ServerProcess()
        self.server.start()
        self.addCleanup(self.server.stop)

    def _register(self, username: str, password: str) -> str:
        status, reg = self.server.request("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, reg)
        return reg["access_token"]

    def _serve(self, app_dir: str, alice: _Alice) -> str:
        handler = type("Handler", (_AppHandler,), {"alice": alice})
        http = HttpThread(functools.partial(handler, directory=app_dir))
        self.addCleanup(http.stop)
        return http.url

    def test_login_invite_join_read_reply(self):
        """Given only the server's URL, Hydrogen logs in, accepts an invite, reads a
        waiting and a live message, and replies; the reply reaches the other side."""
        alice_token = self._register("alice", "alice-password-1")
        self._register("bob", "bob-password-1")
        status, room = self.server.request("POST", "/_matrix/client/v3/createRoom", {
            "name": "Hydrogen test room", "preset": "private_chat",
            "invite": ["@bob:localhost"]}, token=alice_token)
        self.assertEqual(status, 200, room)
        alice = _Alice(self.server, alice_token, room["room_id"])
        alice.send("hello bob, welcome")

        app_dir = os.path.abspath(self.mktemp())
        run_node(self, "hydrogen/build.mjs", {}, args=(app_dir,))
        app_url = self._serve(app_dir, alice)
        screenshot = os.path.abspath(self.mktemp() + "-hydrogen-failure.png")
        run_node(self, "hydrogen/drive.mjs", {
            "APP_URL": app_url + "/index.html", "HS_URL": self.server.base_url,
            "USERNAME": "bob", "PASSWORD": "bob-password-1",
            "ROOM_NAME": "Hydrogen test room", "FIRST_MESSAGE": "hello bob, welcome",
            "CONTROL_URL": app_url + "/_control", "REPLY": "hi alice, from Hydrogen",
            "SCREENSHOT": screenshot, "CHROMIUM": CHROMIUM,
        }, server=self.server)

        self.assertIn("hi alice, from Hydrogen", alice.bodies())
        status, members = self.server.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(alice.room_id)}/joined_members",
            token=alice_token)
        self.assertEqual(status, 200, members)
        self.assertIn("@bob:localhost", members["joined"])
        shutil.rmtree(app_dir, ignore_errors=True)

