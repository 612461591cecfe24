"""MSC4140 delayed events survive the server process (issue 15): a MatrixRTC client's
delayed leave, scheduled before the server is killed, is sent after it comes back.

The real server process: two users, a room; bob's client posts its call membership
and schedules its empty (leave) membership as a delayed event, restarting it a few
times as its keep-alive. Then the server is killed with SIGKILL and bob's client is
gone too. One delay falls due while the server is down, another after it is back:
both go out once it runs again, and everyone sees bob's membership empty.
"""

from __future__ import annotations

import time
import urllib.parse

from twisted.trial import unittest

from tests.e2e.harness import ServerProcess

U = "/_matrix/client/unstable/org.matrix.msc4140"
MEMBER = "org.matrix.msc3401.call.member"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class DelayedEventsThroughRestart(unittest.TestCase):
    timeout = 120

    def setUp(self):
        self.server = ServerProcess(overrides={
            "rc_delayed_event_mgmt": {"per_second": 1000, "burst_count": 1000}})
        self.server.start()
        self.addCleanup(self.server.stop)

    def ok(self, method: str, path: str, body=None, token=None):
        status, resp = self.server.request(method, path, body, token=token)
        self.assertEqual(status, 200, (path, resp, self.server.logs()))
        return resp

    def register(self, name: str) -> tuple[str, str]:
        resp = self.ok("POST", "/_matrix/client/v3/register",
                       {"username": name, "password": "pw-" + name * 3,
                        "auth": {"type": "m.login.dummy"}})
        return resp["user_id"], resp["access_token"]

    def member_state(self, token: str, room: str, key: str):
        return self.server.request(
            "GET", f"/_matrix/client/v3/rooms/{_q(room)}/state/{MEMBER}/{_q(key)}",
            token=token)

    def test_delayed_leave_fires_after_a_crash(self):
        """A delayed leave due while the server was down, and one due after it came
        back, are both sent once it runs again; the memberships are empty for all."""
        _, alice = self.register("alice")
        bob_id, bob = self.register("bob")
        room = self.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"},
                       token=alice)["room_id"]
        self.ok("POST", f"/_matrix/client/v3/rooms/{_q(room)}/join", {}, token=bob)
        delays = {}
        for device, delay_ms in (("PHONE", 1500), ("LAPTOP", 6000)):
            key = f"_{bob_id}_{device}"
            state = f"/_matrix/client/v3/rooms/{_q(room)}/state/{MEMBER}/{_q(key)}"
            delays[key] = self.ok("PUT", f"{state}?org.matrix.msc4140.delay={delay_ms}", {},
                                  token=bob)["delay_id"]
            self.ok("PUT", state, {"application": "m.call", "call_id": "",
                                   "scope": "m.room", "device_id": device,
                                   "focus_active": {"type": "livekit"},
                                   "foci_preferred": [], "expires": 14400000}, token=bob)
            for _ in range(2):
                self.ok("POST", f"{U}/delayed_events/{delays[key]}/restart", {}, token=bob)
        listed = self.ok("GET", U + "/delayed_events", token=bob)["delayed_events"]
        self.assertEqual(sorted(e["delay_id"] for e in listed), sorted(delays.values()))
        self.assertEqual(self.member_state(alice, room, f"_{bob_id}_PHONE")[1]["device_id"],
                         "PHONE")

        self.server.kill()
        time.sleep(2.0)  # the phone's leave falls due while no server runs
        self.server.start()

        deadline = time.monotonic() + 60
        pending = set(delays)
        while pending and time.monotonic() < deadline:
            pending = {key for key in pending
                       if self.member_state(alice, room, key) != (200, {})}
            time.sleep(0.2)
        self.assertEqual(pending, set(), self.server.logs())
        for delay_id in delays.values():
            sent = self.ok("GET", f"{U}/delayed_events/{delay_id}", token=bob)
            self.assertTrue(sent["event_id"].startswith("$"), sent)
        self.assertEqual(self.ok("GET", U + "/delayed_events", token=bob)["delayed_events"], [])
