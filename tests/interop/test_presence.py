"""Presence across servers against a real Synapse: a Synapse user's presence, pushed
as an ``m.presence`` EDU, shows in the /sync ``presence`` of our user who shares a
room with them."""

from __future__ import annotations

import time
import urllib.parse
import uuid

from twisted.trial import unittest

from tests.interop.synapse import Federation


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class PresenceInteropTest(unittest.TestCase):
    timeout = 300

    def test_synapse_users_presence_reaches_our_sync(self) -> None:
        """Bob (Synapse) sets a status; Alice here, in a room with him, sees it."""
        fed = Federation.get()
        syn, ours = fed.synapse, fed.ours
        name = uuid.uuid4().hex[:8]
        status, body = ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"alice{name}", "password": "pw-alice",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        token = body["access_token"]
        syn.register(f"bob{name}", "pw-bob")
        bob_token = syn.login(f"bob{name}", "pw-bob")
        bob = f"@bob{name}:{syn.server_name}"
        status, body = ours.request("POST", "/_matrix/client/v3/createRoom",
                                    {"preset": "public_chat"}, token=token)
        self.assertEqual(status, 200, body)
        room_id = body["room_id"]
        status, body = syn.request(
            "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name={q(fed.our_name)}",
            {}, token=bob_token)
        self.assertEqual(status, 200, body)
        status, body = syn.request(
            "PUT", f"/_matrix/client/v3/presence/{q(bob)}/status",
            {"presence": "online", "status_msg": f"hello {name}"}, token=bob_token)
        self.assertEqual(status, 200, body)

        deadline = time.monotonic() + 60
        since = None
        while time.monotonic() < deadline:
            path = "/_matrix/client/v3/sync?timeout=1000" + (
                f"&since={q(since)}" if since else "")
            status, body = ours.request("GET", path, token=token)
            self.assertEqual(status, 200, body)
            since = body["next_batch"]
            for event in body.get("presence", {}).get("events", []):
                if event["sender"] == bob and \
                        event["content"].get("status_msg") == f"hello {name}":
                    self.assertEqual(event["content"]["presence"], "online")
                    return
        self.fail(f"Bob's presence never reached our /sync; our log: {ours.logs()[-3000:]}")
