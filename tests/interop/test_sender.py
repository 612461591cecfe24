"""The outbound sender against a real Synapse: our messages reach a Synapse user's
/sync, and events sent while Synapse is down all arrive after it restarts (catch-up).

A Synapse user must first join our room, which needs lane fedjoin's make_join /
send_join, and we must answer Synapse's own transactions (lane fedin's inbound
``/send``: a 404 there makes Synapse back off from us and refuse the next join);
without both these tests are skipped.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from typing import Any, Callable

from twisted.trial import unittest

from tests.interop.common import q
from tests.interop.synapse import Federation

#: lane fedjoin (serving make_join/send_join) and lane fedin (inbound /send)
NEEDED = ("federation.membership_server", "federation.inbound_servlets")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]



class SenderInteropTest(unittest.TestCase):
    timeout = 600

    def setUp(self) -> None:
        if MISSING:
            raise unittest.SkipTest(
                "a Synapse user cannot share our room on this branch: joins (lane "
                "fedjoin) and inbound /send (lane fedin) are needed; missing "
                + ", ".join(MISSING))
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        name = uuid.uuid4().hex[:8]
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"alice{name}", "password": "pw-alice",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.token, self.user_id = body["access_token"], body["user_id"]
        self.syn.register(f"bob{name}", "pw-bob")
        self.bob_token = self.syn.login(f"bob{name}", "pw-bob")

    def ours_call(self, method: str, path: str, body: Any = None) -> Any:
        status, resp = self.ours.request(method, path, body, token=self.token)
        self.assertEqual(status, 200, resp)
        return resp

    def bob_joins_our_room(self, room_version: str) -> str:
        room_id = self.ours_call("POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": room_version})["room_id"]
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
            f"{q(self.fed.our_name)}", {}, token=self.bob_token)
        self.assertEqual(status, 200, f"{body}; our log: {self.ours.logs()[-3000:]}")
        return room_id

    def say(self, room_id: str, text: str) -> None:
        self.ours_call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/"
                       f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": text})

    def bodies_bob_sees(self, room_id: str) -> list[str]:
        status, body = self.syn.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit=200",
            token=self.bob_token)
        if status != 200:
            return []
        return [e["content"].get("body") for e in reversed(body.get("chunk", []))
                if e.get("type") == "m.room.message"]

    def wait(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        self.fail(f"timed out after {seconds:g}s waiting for {what}")

    def test_message_reaches_synapse_users_sync(self) -> None:
        """Our user's message arrives in the Synapse user's /sync (room v10 and v12)."""
        for version in ("10", "12"):
            room_id = self.bob_joins_our_room(version)
            text = f"hello synapse in v{version}"
            self.say(room_id, text)

            def in_sync() -> bool:
                status, body = self.syn.request("GET", "/_matrix/client/v3/sync?timeout=0",
                                                token=self.bob_token)
                room = body.get("rooms", {}).get("join", {}).get(room_id, {}) \
                    if status == 200 else {}
                return any(e.get("content", {}).get("body") == text
                           for e in room.get("timeline", {}).get("events", []))

            self.wait(lambda: in_sync() or text in self.bodies_bob_sees(room_id), 60,
                      f"the message in Synapse (v{version})")

    def test_synapse_gets_all_fifty_after_an_outage(self) -> None:
        """Synapse stopped while we send 50 events: after its restart it has all 50."""
        room_id = self.bob_joins_our_room("12")
        self.say(room_id, "before the outage")
        self.wait(lambda: "before the outage" in self.bodies_bob_sees(room_id), 60,
                  "the first message")
        self.syn.sh("stop")
        try:
            sent = [f"during the outage {i}" for i in range(50)]
            for text in sent:
                self.say(room_id, text)
        finally:
            self.syn.start()
        # our sender backs off (5 s doubling): within a few minutes it catches up
        self.wait(lambda: all(t in self.bodies_bob_sees(room_id) for t in sent), 240,
                  "all 50 events in Synapse")
        seen = [b for b in self.bodies_bob_sees(room_id) if b in sent]
        self.assertEqual(seen, sent)

    def test_our_typing_reaches_synapse_in_its_room(self) -> None:
        """Our user joins a Synapse room and types: the typing EDU reaches the Synapse
        user's /sync (the room's other members were indexed at the join)."""
        status, body = self.syn.request("POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": "12"}, token=self.bob_token)
        self.assertEqual(status, 200, body)
        room_id = body["room_id"]
        self.ours_call("POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                       f"{q(self.syn.server_name)}", {})
        status, body = self.syn.request("GET", "/_matrix/client/v3/sync?timeout=0",
                                        token=self.bob_token)
        since = body["next_batch"]
        self.ours_call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/typing/"
                       f"{q(self.user_id)}", {"typing": True, "timeout": 30000})

        def typing() -> bool:
            status, body = self.syn.request(
                "GET", f"/_matrix/client/v3/sync?timeout=5000&since={q(since)}",
                token=self.bob_token)
            room = body.get("rooms", {}).get("join", {}).get(room_id, {}) \
                if status == 200 else {}
            return any(self.user_id in e["content"].get("user_ids", [])
                       for e in room.get("ephemeral", {}).get("events", [])
                       if e["type"] == "m.typing")
        self.wait(typing, 60, "our typing in Synapse's /sync")
