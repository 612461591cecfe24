"""Leave, kick and ban across servers against a real Synapse, room versions 10 and 12.

In our room, our admin kicks or bans a Synapse user (or the user leaves): both servers
agree on that user's membership. In Synapse's room, Synapse's admin kicks or bans our
user (or ours leaves): our ``/sync`` puts the room under ``rooms.leave`` with the
membership event, our user can no longer send, and Synapse agrees.
"""

from __future__ import annotations

import itertools
import uuid

from twisted.trial import unittest

from tests.interop.common import ServerSteps, q
from tests.interop.synapse import Federation

_polls = itertools.count(1)


class MembershipChangesTest(ServerSteps, unittest.TestCase):
    timeout = 600

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours

    # -- people and rooms ---------------------------------------------------------------
    def our_user(self) -> tuple[str, str]:
        name = f"m{uuid.uuid4().hex[:10]}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["user_id"], body["access_token"]

    def synapse_user(self) -> tuple[str, str]:
        name = f"s{uuid.uuid4().hex[:10]}"
        self.syn.register(name, "pw-" + name)
        return f"@{name}:{self.syn.server_name}", self.syn.login(name, "pw-" + name)

    def membership(self, server, room_id: str, user_id: str, token: str) -> str | None:
        status, body = server.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(user_id)}",
            token=token)
        return body.get("membership") if status == 200 and isinstance(body, dict) else None

    def our_room_with_synapse_user(self, version: str):
        admin, admin_token = self.our_user()
        room_id = self.call(self.ours, "POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": version}, admin_token)["room_id"]
        syn_user, syn_token = self.synapse_user()
        self.call(self.syn, "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                  f"{q(self.fed.our_name)}", {}, syn_token)
        self.wait(lambda: self.membership(self.ours, room_id, syn_user, admin_token) == "join",
                  "the Synapse user's join on our side")
        return room_id, admin_token, syn_user, syn_token

    def synapse_room_with_our_user(self, version: str):
        syn_admin, syn_token = self.synapse_user()
        room_id = self.call(self.syn, "POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": version}, syn_token)["room_id"]
        user, token = self.our_user()
        self.call(self.ours, "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                  f"{q(self.syn.server_name)}", {}, token)
        self.wait(lambda: self.membership(self.syn, room_id, user, syn_token) == "join",
                  "our user's join on Synapse")
        return room_id, syn_token, user, token

    # -- our room: the Synapse user leaves, is kicked, is banned ------------------------
    def _our_admin_removes(self, version: str, action: str, expected: str) -> None:
        room_id, admin_token, syn_user, syn_token = self.our_room_with_synapse_user(version)
        if action == "leave":
            self.call(self.syn, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {},
                      syn_token)
        else:
            self.call(self.ours, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/{action}",
                      {"user_id": syn_user, "reason": "interop"}, admin_token)
        self.wait(lambda: self.membership(self.ours, room_id, syn_user, admin_token)
                  == expected, f"{expected} on our side")
        # Synapse lets a banned user read no room state; its /sync shows the change
        self.wait(lambda: self.left_in_sync(self.syn, room_id, syn_token, expected),
                  f"{expected} in the Synapse user's /sync")
        status, body = self.syn.request("GET", "/_matrix/client/v3/joined_rooms",
                                        token=syn_token)
        self.assertNotIn(room_id, body["joined_rooms"])
        # the removed user's own server no longer lets them speak in the room
        status, body = self.syn.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/"
            f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": "still here?"},
            token=syn_token)
        self.assertEqual(status, 403, body)
        if action == "ban":  # and a banned user cannot come back
            status, body = self.syn.request(
                "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                f"{q(self.fed.our_name)}", {}, token=syn_token)
            self.assertEqual(status, 403, body)

    def test_synapse_user_leaves_our_room(self):
        """A Synapse user leaves our room (v10, v12): both servers show leave."""
        for version in ("10", "12"):
            self._our_admin_removes(version, "leave", "leave")

    def test_we_kick_synapse_user(self):
        """Our admin kicks a Synapse user (v10, v12): both servers show leave."""
        for version in ("10", "12"):
            self._our_admin_removes(version, "kick", "leave")

    def test_we_ban_synapse_user(self):
        """Our admin bans a Synapse user (v10, v12): both show ban; no rejoin."""
        for version in ("10", "12"):
            self._our_admin_removes(version, "ban", "ban")

    # -- Synapse's room: our user leaves, is kicked, is banned --------------------------
    def left_in_sync(self, server, room_id: str, token: str, expected: str) -> bool:
        """Whether ``server``'s /sync lists the room under rooms.leave with a membership
        event saying ``expected``."""
        # Synapse caches a /sync answer for two minutes by its request (user, since,
        # timeout, filter): a new timeout each poll makes each ask afresh
        status, body = server.request(
            "GET", f"/_matrix/client/v3/sync?timeout={next(_polls)}&filter="
            + q('{"room": {"include_leave": true}}'), token=token)
        if status != 200:
            return False
        left = body.get("rooms", {}).get("leave", {}).get(room_id)
        if left is None or room_id in body["rooms"].get("join", {}):
            return False
        events = left.get("timeline", {}).get("events", []) + \
            left.get("state", {}).get("events", [])
        return any(e["type"] == "m.room.member" and e["content"].get("membership") == expected
                   for e in events)

    def _synapse_admin_removes(self, version: str, action: str, expected: str) -> None:
        room_id, syn_token, user, token = self.synapse_room_with_our_user(version)
        if action == "leave":
            self.call(self.ours, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {},
                      token)
        else:
            self.call(self.syn, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/{action}",
                      {"user_id": user, "reason": "interop"}, syn_token)
        self.wait(lambda: self.membership(self.syn, room_id, user, syn_token) == expected,
                  f"{expected} on Synapse")
        self.wait(lambda: self.left_in_sync(self.ours, room_id, token, expected),
                  f"the room under rooms.leave in our /sync with {expected}")
        self.assertEqual(self.membership(self.ours, room_id, user, token), expected)
        status, body = self.ours.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/"
            f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": "still here?"}, token=token)
        self.assertEqual(status, 403, body)
        self.assertEqual(body.get("errcode"), "M_FORBIDDEN", body)
        if action == "ban":
            status, body = self.ours.request(
                "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                f"{q(self.syn.server_name)}", {}, token=token)
            self.assertEqual(status, 403, body)

    def test_our_user_leaves_synapse_room(self):
        """Our user leaves a Synapse room (v10, v12): Synapse shows leave, our /sync too."""
        for version in ("10", "12"):
            self._synapse_admin_removes(version, "leave", "leave")

    def test_synapse_kicks_our_user(self):
        """Synapse's admin kicks our user (v10, v12): our /sync shows it, no more sends."""
        for version in ("10", "12"):
            self._synapse_admin_removes(version, "kick", "leave")

    def test_synapse_bans_our_user(self):
        """Synapse's admin bans our user (v10, v12): our /sync shows the ban, no sends,
        no rejoin."""
        for version in ("10", "12"):
            self._synapse_admin_removes(version, "ban", "ban")
