"""A room upgrade across servers against a real Synapse.

Our user upgrades a room a Synapse user shares (v10 → v12): Synapse receives the
tombstone in the old room, the Synapse user follows it and joins the new room over
federation, and both servers agree on the new room's members and its predecessor.
"""

from __future__ import annotations

import uuid

from twisted.trial import unittest

from tests.interop.common import ServerSteps, q
from tests.interop.synapse import Federation


class RoomUpgradeTest(ServerSteps, unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        name = uuid.uuid4().hex[:8]
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"u{name}", "password": "pw-" + name,
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.user, self.token = body["user_id"], body["access_token"]
        self.syn.register(f"v{name}", "pw-" + name)
        self.syn_user = f"@v{name}:{self.syn.server_name}"
        self.syn_token = self.syn.login(f"v{name}", "pw-" + name)

    def state_event(self, server, room_id: str, event_type: str, token: str,
                    state_key: str = "") -> dict | None:
        status, body = server.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/{event_type}/{q(state_key)}",
            token=token)
        return body if status == 200 else None

    def members(self, server, room_id: str, token: str) -> set[str]:
        status, body = server.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members", token=token)
        return set(body["joined"]) if status == 200 else set()

    def test_synapse_user_follows_our_upgrade(self):
        """Our user upgrades a shared v10 room to v12; the Synapse user sees the
        tombstone, joins the new room, and both servers agree on it."""
        old = self.call(self.ours, "POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": "10"}, self.token)["room_id"]
        self.call(self.syn, "POST", f"/_matrix/client/v3/join/{q(old)}?server_name="
                  f"{q(self.fed.our_name)}", {}, self.syn_token)
        new = self.call(self.ours, "POST", f"/_matrix/client/v3/rooms/{q(old)}/upgrade",
                        {"new_version": "12"}, self.token)["replacement_room"]

        tombstone = self.wait(lambda: self.state_event(self.syn, old, "m.room.tombstone",
                                                       self.syn_token),
                              "the tombstone on Synapse")
        self.assertEqual(tombstone["replacement_room"], new)
        # the old room is closed to the Synapse user as it is on our side
        status, body = self.syn.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(old)}/send/m.room.message/x1",
            {"msgtype": "m.text", "body": "old room"}, token=self.syn_token)
        self.assertEqual(status, 403, body)

        self.call(self.syn, "POST", f"/_matrix/client/v3/join/{q(new)}?server_name="
                  f"{q(self.fed.our_name)}", {}, self.syn_token)
        self.wait(lambda: self.members(self.ours, new, self.token) == {self.user,
                                                                        self.syn_user},
                  "the Synapse user in the new room on our side")
        self.assertEqual(self.members(self.syn, new, self.syn_token),
                         {self.user, self.syn_user})
        create = self.state_event(self.syn, new, "m.room.create", self.syn_token)
        self.assertEqual(create["predecessor"]["room_id"], old, create)
        self.assertEqual(create["room_version"], "12", create)
        # messages flow in the new room both ways
        self.call(self.syn, "PUT", f"/_matrix/client/v3/rooms/{q(new)}/send/m.room.message/"
                  f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": "in the new room"},
                  self.syn_token)

        def ours_has_it() -> bool:
            status, body = self.ours.request(
                "GET", f"/_matrix/client/v3/rooms/{q(new)}/messages?dir=b&limit=20",
                token=self.token)
            return status == 200 and "in the new room" in [
                e["content"].get("body") for e in body["chunk"]]
        self.wait(ours_has_it, "the Synapse user's message in the new room on our side")
