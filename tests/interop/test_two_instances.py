"""Two instances of our server federating on loopback (``tests/interop/pair.py``):
joins across in room versions 10 and 12, messages both ways through /sync, invite and
join across, leave, profile and alias queries, a remote media download, and a 50-event
catch-up after the receiving server was down (Server-Server API; issue 14's "the same
suite passes with two instances of this server").
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid

from twisted.trial import unittest

from tests.client_api.e2e_helpers import device_keys
from tests.interop.common import (
    SyncCursor, bodies, call, create_room, join, members, q, register, room_events, say,
    wait_for,
)
from tests.interop.pair import OurPair


class TwoInstancesTest(unittest.TestCase):
    timeout = 600

    def setUp(self) -> None:
        self.pair = OurPair.get()
        self.a, self.b = self.pair.a, self.pair.b

    def shared_room(self, version: str) -> tuple[str, str, str, str, str]:
        """A public room made on A, joined by a user of B: (room, a_user, a_token,
        b_user, b_token)."""
        a_user, a_token = register(self.a, "alice")
        room_id = create_room(self.a, a_token, version, preset="public_chat")
        b_user, b_token = register(self.b, "bob")
        body = join(self.b, b_token, room_id, via=self.a.server_name)
        self.assertEqual(body["room_id"], room_id)
        return room_id, a_user, a_token, b_user, b_token

    def messages(self, server, token: str, room_id: str) -> list[str]:
        body = call(server, "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages"
                    "?dir=b&limit=200", None, token)
        return [e["content"].get("body") for e in reversed(body["chunk"])
                if e["type"] == "m.room.message"]

    # -- joins --------------------------------------------------------------------------
    def _join_across(self, version: str) -> None:
        room_id, a_user, a_token, b_user, b_token = self.shared_room(version)
        self.assertEqual(set(members(self.b, b_token, room_id)), {a_user, b_user})
        wait_for(lambda: set(members(self.a, a_token, room_id)) == {a_user, b_user},
                 "B's user in A's member list")
        sync = SyncCursor(self.b, b_token).once()
        [create] = [e for e in room_events(sync, room_id) if e["type"] == "m.room.create"]
        self.assertEqual(create["content"].get("room_version"), version)

    def test_join_public_room_v10(self):
        """A user of B joins A's public v10 room; both servers list both members."""
        self._join_across("10")

    def test_join_public_room_v12(self):
        """A user of B joins A's public v12 room (room ID without a server name)."""
        self._join_across("12")

    # -- messages -----------------------------------------------------------------------
    def test_messages_both_ways_through_sync(self):
        """A message sent on A arrives in B's /sync and one sent on B in A's (v10, v12)."""
        for version in ("10", "12"):
            room_id, _a_user, a_token, _b_user, b_token = self.shared_room(version)
            a_sync, b_sync = SyncCursor(self.a, a_token), SyncCursor(self.b, b_token)
            a_sync.once()
            b_sync.once()
            say(self.a, a_token, room_id, f"from A v{version}")
            b_sync.until(lambda s: f"from A v{version}" in bodies(s, room_id),
                         f"A's message on B (v{version})")
            say(self.b, b_token, room_id, f"from B v{version}")
            a_sync.until(lambda s: f"from B v{version}" in bodies(s, room_id),
                         f"B's message on A (v{version})")

    def test_typing_and_receipt_across(self):
        """B's user types and sends a read receipt in A's room: both EDUs reach A's
        /sync as ephemeral events."""
        room_id, _a_user, a_token, b_user, b_token = self.shared_room("12")
        event_id = say(self.a, a_token, room_id, "read me")
        a_sync = SyncCursor(self.a, a_token)
        a_sync.once()
        call(self.b, "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/typing/{q(b_user)}",
             {"typing": True, "timeout": 30000}, b_token)

        def ephemeral(kind: str):
            def check(sync: dict):
                room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
                return [e for e in room.get("ephemeral", {}).get("events", [])
                        if e["type"] == kind]
            return check
        typing = a_sync.until(ephemeral("m.typing"), "B's typing on A")
        self.assertIn(b_user, typing[-1]["content"]["user_ids"])
        wait_for(lambda: "read me" in self.messages(self.b, b_token, room_id),
                 "the message on B")
        call(self.b, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/receipt/m.read/"
             f"{q(event_id)}", {}, b_token)
        a_sync.until(lambda s: any(b_user in e["content"].get(event_id, {})
                                   .get("m.read", {})
                                   for e in ephemeral("m.receipt")(s)), "B's receipt on A")

    # -- invites and leaves -------------------------------------------------------------
    def test_invite_and_join_across(self):
        """A invites a user of B to a private room: the invite is in B's /sync, the user
        joins, and A sees the join."""
        a_user, a_token = register(self.a, "carol")
        room_id = create_room(self.a, a_token, "12", preset="private_chat", name="secret")
        b_user, b_token = register(self.b, "dan")
        call(self.a, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite",
             {"user_id": b_user}, a_token)
        cursor = SyncCursor(self.b, b_token)
        invite = cursor.until(lambda s: s["rooms"].get("invite", {}).get(room_id),
                              "the invite on B")
        names = [e["content"].get("name") for e in invite["invite_state"]["events"]
                 if e["type"] == "m.room.name"]
        self.assertEqual(names, ["secret"])
        call(self.b, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/join", {}, b_token)
        wait_for(lambda: b_user in members(self.a, a_token, room_id), "the join on A")
        cursor.until(lambda s: room_id in s["rooms"].get("join", {}), "the room joined on B")

    def test_leave_across(self):
        """A user of B leaves A's room: A's state says leave and A's /sync shows it."""
        room_id, _a_user, a_token, b_user, b_token = self.shared_room("12")
        wait_for(lambda: b_user in members(self.a, a_token, room_id), "the join on A")
        a_sync = SyncCursor(self.a, a_token)
        a_sync.once()
        call(self.b, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {}, b_token)

        def left(sync: dict) -> bool:
            return any(e["type"] == "m.room.member" and e.get("state_key") == b_user
                       and e["content"].get("membership") == "leave"
                       for e in room_events(sync, room_id))
        a_sync.until(left, "B's leave in A's /sync")
        status, member = self.a.request(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.member/{q(b_user)}",
            token=a_token)
        self.assertEqual((status, member.get("membership")), (200, "leave"))
        self.assertNotIn(b_user, members(self.a, a_token, room_id))

    # -- queries ------------------------------------------------------------------------
    def test_profile_and_alias_queries(self):
        """B's client reads the profile of A's user and resolves an alias on A; unknown
        ones are 404 M_NOT_FOUND."""
        a_user, a_token = register(self.a, "erin")
        call(self.a, "PUT", f"/_matrix/client/v3/profile/{q(a_user)}/displayname",
             {"displayname": "Erin on A"}, a_token)
        local = f"pair{uuid.uuid4().hex[:6]}"
        room_id = create_room(self.a, a_token, "12", room_alias_name=local)
        _b_user, b_token = register(self.b, "fred")
        body = call(self.b, "GET", f"/_matrix/client/v3/profile/{q(a_user)}", None, b_token)
        self.assertEqual(body.get("displayname"), "Erin on A")
        alias = f"#{local}:{self.a.server_name}"
        body = call(self.b, "GET", f"/_matrix/client/v3/directory/room/{q(alias)}", None,
                    b_token)
        self.assertEqual(body["room_id"], room_id)
        self.assertIn(self.a.server_name, body["servers"])
        status, body = self.b.request(
            "GET", f"/_matrix/client/v3/directory/room/{q('#nope:' + self.a.server_name)}",
            token=b_token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        nobody = f"@nobody{uuid.uuid4().hex[:6]}:{self.a.server_name}"
        status, body = self.b.request("GET", f"/_matrix/client/v3/profile/{q(nobody)}",
                                      token=b_token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    def test_keys_query_and_claim_across(self):
        """B's client gets the device keys of A's user from /keys/query and one of their
        one-time keys from /keys/claim (B asked A's /user/keys/*)."""
        name = f"kai{uuid.uuid4().hex[:6]}"
        body = call(self.a, "POST", "/_matrix/client/v3/register", {
            "username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
        a_user, a_token, a_device = body["user_id"], body["access_token"], body["device_id"]
        keys, _ = device_keys(a_user, a_device)
        call(self.a, "POST", "/_matrix/client/v3/keys/upload", {
            "device_keys": keys,
            "one_time_keys": {"signed_curve25519:CCCC": {"key": "otk", "signatures": {}}},
        }, a_token)
        _b_user, b_token = register(self.b, "lia")
        body = call(self.b, "POST", "/_matrix/client/v3/keys/query",
                    {"device_keys": {a_user: []}, "timeout": 10000}, b_token)
        self.assertEqual(body["failures"], {})
        got = body["device_keys"][a_user][a_device]
        self.assertEqual((got["keys"], got["signatures"]), (keys["keys"], keys["signatures"]))
        body = call(self.b, "POST", "/_matrix/client/v3/keys/claim", {
            "one_time_keys": {a_user: {a_device: "signed_curve25519"}}}, b_token)
        self.assertEqual(list(body["one_time_keys"][a_user][a_device]),
                         ["signed_curve25519:CCCC"])

    # -- media --------------------------------------------------------------------------
    def test_remote_media_download(self):
        """A file uploaded on A downloads byte-identical through B's client API."""
        _a_user, a_token = register(self.a, "gil")
        _b_user, b_token = register(self.b, "hal")
        data = os.urandom(150_000)
        req = urllib.request.Request(
            self.a.base_url + "/_matrix/media/v3/upload?filename=blob.bin", data=data,
            method="POST", headers={"Authorization": f"Bearer {a_token}",
                                    "Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=30) as r:
            uri = json.loads(r.read())["content_uri"]
        server_name, media_id = uri[len("mxc://"):].split("/")
        self.assertEqual(server_name, self.a.server_name)
        req = urllib.request.Request(
            f"{self.b.base_url}/_matrix/client/v1/media/download/{server_name}/{media_id}",
            headers={"Authorization": f"Bearer {b_token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                got = r.read()
        except urllib.error.HTTPError as e:
            self.fail(f"download through B: {e.code} {e.read()[:300]!r}")
        self.assertEqual(got, data)

    # -- catch-up -----------------------------------------------------------------------
    def test_fifty_events_after_b_restarts(self):
        """B is stopped while A sends 50 events; after B's restart it has all 50, in
        order."""
        room_id, _a_user, a_token, _b_user, b_token = self.shared_room("12")
        say(self.a, a_token, room_id, "before the outage")
        wait_for(lambda: "before the outage" in self.messages(self.b, b_token, room_id),
                 "the first message on B")
        self.pair.stop_b()
        try:
            sent = [f"during the outage {i}" for i in range(50)]
            for text in sent:
                say(self.a, a_token, room_id, text)
        finally:
            self.pair.start_b()
        # A's sender backs off while B is down; within a few minutes it catches up
        wait_for(lambda: all(t in self.messages(self.b, b_token, room_id) for t in sent),
                 "all 50 events on B", timeout=240, interval=1.0)
        self.assertEqual([m for m in self.messages(self.b, b_token, room_id) if m in sent],
                         sent)

    # -- the other direction, kicks and bans, history --------------------------------------
    def test_a_user_joins_room_on_b_v10(self):
        """The other direction: a user of A joins B's public v10 room and B's message
        reaches A's /sync."""
        b_user, b_token = register(self.b, "ida")
        room_id = create_room(self.b, b_token, "10", preset="public_chat")
        a_user, a_token = register(self.a, "jon")
        a_sync = SyncCursor(self.a, a_token)
        a_sync.once()
        join(self.a, a_token, room_id, via=self.b.server_name)
        wait_for(lambda: set(members(self.b, b_token, room_id)) == {a_user, b_user},
                 "A's user in B's member list")
        say(self.b, b_token, room_id, "hello from B's room")
        a_sync.until(lambda s: "hello from B's room" in bodies(s, room_id),
                     "B's message on A")

    def test_kick_and_ban_across(self):
        """A kicks B's user (B's /sync shows the leave; the user may join again), then
        bans them: B's next join is refused with 403."""
        room_id, _a_user, a_token, b_user, b_token = self.shared_room("12")
        wait_for(lambda: b_user in members(self.a, a_token, room_id), "the join on A")
        b_sync = SyncCursor(self.b, b_token)
        b_sync.once()
        call(self.a, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/kick",
             {"user_id": b_user, "reason": "out"}, a_token)
        b_sync.until(lambda s: room_id in s["rooms"].get("leave", {}), "the kick on B")
        join(self.b, b_token, room_id, via=self.a.server_name)
        wait_for(lambda: b_user in members(self.a, a_token, room_id), "the re-join on A")
        call(self.a, "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/ban",
             {"user_id": b_user}, a_token)
        b_sync.until(lambda s: room_id in s["rooms"].get("leave", {}), "the ban on B")
        status, body = self.b.request(
            "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name={q(self.a.server_name)}",
            {}, token=b_token)
        self.assertEqual((status, body.get("errcode")), (403, "M_FORBIDDEN"), body)

    def test_joiner_sees_earlier_history(self):
        """Messages sent on A before B's user joined are readable on B (/messages, by
        backfill from A)."""
        a_user, a_token = register(self.a, "kim")
        room_id = create_room(self.a, a_token, "12", preset="public_chat")
        earlier = [f"earlier {i}" for i in range(20)]
        for text in earlier:
            say(self.a, a_token, room_id, text)
        _b_user, b_token = register(self.b, "lou")
        join(self.b, b_token, room_id, via=self.a.server_name)
        wait_for(lambda: self.messages(self.b, b_token, room_id)[-20:] == earlier,
                 "the earlier messages on B", timeout=10)
