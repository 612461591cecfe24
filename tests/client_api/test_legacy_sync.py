"""GET /events, GET /initialSync, GET /rooms/{roomId}/initialSync (spec: old_sync.yaml),
as sytest drives them."""

from __future__ import annotations

from urllib.parse import urlencode

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.client_api.harness import _FAST, q
from tests.client_api.room_helpers import V3, RoomsTestCase


class LegacySyncTestCase(RoomsTestCase):
    config_overrides = {"rc_presence": {"per_user": _FAST}, "allow_guest_access": True}

    async def events(self, token: str, **params) -> tuple[int, dict]:
        params.setdefault("timeout", 0)
        return await self.request("GET", f"{V3}/events?{urlencode(params)}", token=token)

    async def guest(self) -> tuple[str, str]:
        status, body = await self.request("POST", V3 + "/register?kind=guest", {})
        self.assertEqual(status, 200, body)
        return body["user_id"], body["access_token"]


class EventsTests(LegacySyncTestCase):
    async def test_initial_call(self):
        """GET /events with no from answers start, end and a (list) chunk."""
        _, token = await self.register("alice")
        status, body = await self.events(token)
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body["chunk"], list)
        self.assertIn("start", body)
        self.assertIn("end", body)

    async def test_new_message_from_token(self):
        """Events after ``from`` come with room_id and user_id; ``end`` moves on."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token)
        _, first = await self.events(token)
        await self.send(token, room_id, {"msgtype": "m.text", "body": "hi"})
        status, body = await self.events(token, **{"from": first["end"]})
        self.assertEqual(status, 200, body)
        messages = [e for e in body["chunk"] if e["type"] == "m.room.message"]
        self.assertEqual([m["content"]["body"] for m in messages], ["hi"])
        self.assertEqual(messages[0]["room_id"], room_id)
        self.assertEqual(messages[0]["user_id"], alice)
        _, again = await self.events(token, **{"from": body["end"]})
        self.assertEqual([e for e in again["chunk"] if e["type"] == "m.room.message"], [])

    async def test_long_poll_wakes(self):
        """A waiting /events answers when a message arrives (presence may come first)."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        _, body = await self.events(token)
        waiting = defer.ensureDeferred(self.events(token, **{"from": body["end"],
                                                             "timeout": 10000}))
        await deferLater(reactor, 0.2, lambda: None)
        await self.send(token, room_id, {"msgtype": "m.text", "body": "wake"})
        seen: list = []
        for _ in range(5):
            status, body = await waiting
            self.assertEqual(status, 200)
            seen += [e["content"].get("body") for e in body["chunk"]]
            if "wake" in seen:
                break
            waiting = defer.ensureDeferred(self.events(token, **{"from": body["end"],
                                                                 "timeout": 10000}))
        self.assertIn("wake", seen)

    async def test_typing_and_receipts(self):
        """Typing and receipt events reach /events with their room_id."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token)
        event_id = await self.send(token, room_id, {"msgtype": "m.text", "body": "x"})
        _, first = await self.events(token)
        await self.ok("PUT", self.room(room_id, f"/typing/{q(alice)}"),
                      {"typing": True, "timeout": 30000}, token=token)
        await self.post(token, self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {})
        _, body = await self.events(token, **{"from": first["end"]})
        by_type = {e["type"]: e for e in body["chunk"]}
        self.assertEqual(by_type["m.typing"]["room_id"], room_id)
        self.assertEqual(by_type["m.typing"]["content"]["user_ids"], [alice])
        self.assertIn(alice, by_type["m.receipt"]["content"][event_id]["m.read"])

    async def test_bad_parameters(self):
        """Non-numeric or negative limit/timeout and a bad from are 400s."""
        _, token = await self.register("alice")
        for params in ({"limit": "hello"}, {"limit": -2}, {"timeout": "hello"},
                       {"from": "nonsense"}):
            status, body = await self.events(token, **params)
            self.assertEqual(status, 400, (params, body))

    async def test_guest_needs_room_id(self):
        """A guest may not read the global stream: 403 M_GUEST_ACCESS_FORBIDDEN."""
        _, token = await self.guest()
        status, body = await self.events(token)
        self.assertEqual((status, body["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))

    async def test_guest_global_initial_sync_forbidden(self):
        """Guests may not use the global /initialSync (as in Synapse)."""
        _, token = await self.guest()
        status, body = await self.request("GET", V3 + "/initialSync", token=token)
        self.assertEqual((status, body["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))

    async def test_peek_world_readable(self):
        """A non-member reads a world-readable room's new events with room_id, and
        /events does not answer the same events again (no tight loop)."""
        _, owner = await self.register("owner")
        room_id = await self.create_room(owner, preset="public_chat")
        await self.put_state(owner, room_id, "m.room.history_visibility",
                             {"history_visibility": "world_readable"})
        _, guest = await self.guest()
        status, sync = await self.request("GET", self.room(room_id, "/initialSync"),
                                          token=guest)
        self.assertEqual(status, 200, sync)
        start = sync["messages"]["end"]
        status, body = await self.events(guest, room_id=room_id, **{"from": start})
        self.assertEqual((status, body["chunk"]), (200, []))
        await self.send(owner, room_id, {"msgtype": "m.text", "body": "public"})
        status, body = await self.events(guest, room_id=room_id, **{"from": body["end"]})
        self.assertEqual([e["content"].get("body") for e in body["chunk"]], ["public"])
        status, body = await self.events(guest, room_id=room_id, **{"from": body["end"]})
        self.assertEqual(body["chunk"], [])

    async def test_peek_sees_receipts_typing_presence(self):
        """A peeker sees the room's receipts, typing and its members' presence, with
        content.user_id, but not the presence of users outside the room."""
        owner, o_token = await self.register("owner")
        _, outsider = await self.register("outsider")
        room_id = await self.create_room(o_token, preset="public_chat")
        await self.put_state(o_token, room_id, "m.room.history_visibility",
                             {"history_visibility": "world_readable"})
        event_id = await self.send(o_token, room_id, {"msgtype": "m.text", "body": "x"})
        _, peeker = await self.register("peeker")
        _, body = await self.events(peeker, room_id=room_id)
        start = body["end"]
        await self.ok("PUT", f"{V3}/presence/{q(owner)}/status",
                      {"presence": "online", "status_msg": "here"}, token=o_token)
        outsider_id = "@outsider:test.local"
        await self.ok("PUT", f"{V3}/presence/{q(outsider_id)}/status",
                      {"presence": "online"}, token=outsider)
        await self.post(o_token, self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {})
        await self.ok("PUT", self.room(room_id, f"/typing/{q(owner)}"),
                      {"typing": True, "timeout": 30000}, token=o_token)
        _, body = await self.events(peeker, room_id=room_id, **{"from": start})
        by_type: dict = {}
        for e in body["chunk"]:
            by_type.setdefault(e["type"], []).append(e)
        self.assertEqual([p["content"]["user_id"] for p in by_type["m.presence"]], [owner])
        self.assertIn(owner, by_type["m.receipt"][0]["content"][event_id]["m.read"])
        self.assertEqual(by_type["m.typing"][0]["content"]["user_ids"], [owner])
        self.assertEqual(by_type["m.typing"][0]["room_id"], room_id)

    async def test_peek_private_room_forbidden(self):
        """Peeking a room that is not world-readable is 403."""
        _, owner = await self.register("owner")
        room_id = await self.create_room(owner, preset="private_chat")
        _, other = await self.register("other")
        status, body = await self.events(other, room_id=room_id)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))


class InitialSyncTests(LegacySyncTestCase):
    async def test_global_initial_sync(self):
        """Rooms come with membership, visibility, state, messages and account data."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token, preset="public_chat", visibility="public",
                                         topic="the topic")
        await self.send(token, room_id, {"msgtype": "m.text", "body": "hello"})
        await self.ok("PUT", f"{V3}/user/{q(alice)}/rooms/{q(room_id)}/tags/u.work",
                      {"order": 0.5}, token=token)
        await self.ok("PUT", f"{V3}/user/{q(alice)}/account_data/my.data", {"a": 1},
                      token=token)
        body = await self.ok("GET", V3 + "/initialSync", token=token)
        self.assertIn("end", body)
        (room,) = [r for r in body["rooms"] if r["room_id"] == room_id]
        self.assertEqual((room["membership"], room["visibility"]), ("join", "public"))
        topics = [e for e in room["state"] if e["type"] == "m.room.topic"]
        self.assertEqual(topics[0]["content"]["topic"], "the topic")
        self.assertEqual(room["messages"]["chunk"][-1]["content"]["body"], "hello")
        self.assertTrue({"start", "end"} <= set(room["messages"]))
        tags = [e for e in room["account_data"] if e["type"] == "m.tag"]
        self.assertEqual(tags[0]["content"]["tags"], {"u.work": {"order": 0.5}})
        self.assertIn({"type": "my.data", "content": {"a": 1}}, body["account_data"])

    async def test_own_presence_of_new_user(self):
        """A new user sees their own presence (with last_active_ago) in /initialSync."""
        alice, token = await self.register("alice")
        body = await self.ok("GET", V3 + "/initialSync", token=token)
        (mine,) = [p for p in body["presence"] if p["content"]["user_id"] == alice]
        self.assertEqual(mine["type"], "m.presence")
        self.assertIn("last_active_ago", mine["content"])
        self.assertIn("presence", mine["content"])

    async def test_limit_zero_and_bad_limit(self):
        """limit=0 gives no messages; a non-numeric limit is 400."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        body = await self.ok("GET", V3 + "/initialSync?limit=0", token=token)
        (room,) = [r for r in body["rooms"] if r["room_id"] == room_id]
        self.assertEqual(room["messages"]["chunk"], [])
        status, _ = await self.request("GET", V3 + "/initialSync?limit=hello", token=token)
        self.assertEqual(status, 400)

    async def test_invites_and_archived(self):
        """An invite is listed with its inviter; a left room only with archived=true."""
        alice, a_token = await self.register("alice")
        bob, b_token = await self.register("bob")
        invited = await self.create_room(a_token)
        await self.invite(a_token, invited, bob)
        left = await self.create_room(a_token, preset="public_chat")
        await self.join(b_token, left)
        await self.leave(b_token, left)
        body = await self.ok("GET", V3 + "/initialSync", token=b_token)
        rooms = {r["room_id"]: r for r in body["rooms"]}
        self.assertEqual(rooms[invited]["membership"], "invite")
        self.assertEqual(rooms[invited]["inviter"], alice)
        self.assertNotIn(left, rooms)
        body = await self.ok("GET", V3 + "/initialSync?archived=true", token=b_token)
        rooms = {r["room_id"]: r for r in body["rooms"]}
        self.assertEqual(rooms[left]["membership"], "leave")

    async def test_events_continue_from_initial_sync(self):
        """``end`` of /initialSync is a token /events goes on from."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        body = await self.ok("GET", V3 + "/initialSync", token=token)
        await self.send(token, room_id, {"msgtype": "m.text", "body": "after"})
        _, events = await self.events(token, **{"from": body["end"]})
        self.assertEqual([e["content"]["body"] for e in events["chunk"]
                          if e["type"] == "m.room.message"], ["after"])

    async def test_room_initial_sync(self):
        """Room initialSync: state, messages, own presence with content.user_id."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token, preset="public_chat")
        await self.ok("PUT", f"{V3}/presence/{q(alice)}/status", {"presence": "online"},
                      token=token)
        await self.send(token, room_id, {"msgtype": "m.text", "body": "m"})
        body = await self.ok("GET", self.room(room_id, "/initialSync"), token=token)
        self.assertEqual(body["membership"], "join")
        members = {e["state_key"]: e for e in body["state"] if e["type"] == "m.room.member"}
        self.assertEqual(members[alice]["content"]["membership"], "join")
        presence = {e["content"]["user_id"]: e for e in body["presence"]}
        self.assertEqual(presence[alice]["content"]["presence"], "online")
        self.assertTrue(body["messages"]["chunk"])
        body = await self.ok("GET", self.room(room_id, "/initialSync?limit=0"), token=token)
        self.assertEqual(body["messages"]["chunk"], [])
        body = await self.ok("GET", self.room(room_id, "/initialSync?limit=1"), token=token)
        (newest,) = body["messages"]["chunk"]
        self.assertEqual(newest["content"]["body"], "m")
        _, older = await self.messages(token, room_id, dir="b", limit=50,
                                       **{"from": body["messages"]["start"]})
        ids = [e["event_id"] for e in older["chunk"]]
        self.assertNotIn(newest["event_id"], ids)
        self.assertEqual(older["chunk"][-1]["type"], "m.room.create")
        body = await self.ok("GET", self.room(room_id, "/initialSync?limit=100"), token=token)
        _, older = await self.messages(token, room_id, dir="b",
                                       **{"from": body["messages"]["start"]})
        self.assertEqual(older["chunk"], [])

    async def test_departed_room(self):
        """A departed room shows state and messages as they were at the leave, with no
        presence or receipts (sytest SPEC-216)."""
        _, a_token = await self.register("alice")
        bob, b_token = await self.register("bob")
        room_id = await self.create_room(a_token, preset="public_chat")
        await self.join(b_token, room_id)
        await self.put_state(a_token, room_id, "madeup.test.state", {"body": "S1"})
        await self.send(a_token, room_id, {"msgtype": "m.text", "body": "M1"})
        await self.send(a_token, room_id, {"msgtype": "m.text", "body": "M2"})
        await self.leave(b_token, room_id)
        await self.send(a_token, room_id, {"msgtype": "m.text", "body": "M3"})
        await self.put_state(a_token, room_id, "madeup.test.state", {"body": "S2"})
        glob = await self.ok("GET", V3 + "/initialSync?limit=2&archived=true", token=b_token)
        (in_global,) = [r for r in glob["rooms"] if r["room_id"] == room_id]
        room = await self.ok("GET", self.room(room_id, "/initialSync?limit=2"),
                             token=b_token)
        for body in (in_global, room):
            self.assertEqual(body["membership"], "leave")
            (made_up,) = [e for e in body["state"] if e["type"] == "madeup.test.state"]
            self.assertEqual(made_up["content"]["body"], "S1")
            self.assertEqual(body["messages"]["chunk"][0]["content"]["body"], "M2")
        self.assertEqual((room["presence"], room["receipts"]), ([], []))

    async def test_room_initial_sync_lists_offline_members(self):
        """Room initialSync gives every member's presence, offline ones too (sytest
        "New room members see existing users' presence in room initialSync")."""
        creator, c_token = await self.register("creator")
        _, token = await self.register("joiner")
        room_id = await self.create_room(c_token, preset="public_chat")
        await self.join(token, room_id)
        body = await self.ok("GET", self.room(room_id, "/initialSync"), token=token)
        presence = {e["content"]["user_id"]: e for e in body["presence"]}
        self.assertEqual(presence[creator]["content"]["presence"], "offline")

    async def test_room_initial_sync_forbidden(self):
        """A non-member of a room that is not world-readable gets 403."""
        _, owner = await self.register("owner")
        room_id = await self.create_room(owner, preset="private_chat")
        _, other = await self.register("other")
        status, body = await self.request("GET", self.room(room_id, "/initialSync"),
                                          token=other)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_receipts_in_initial_sync(self):
        """Read receipts are listed per room in /initialSync."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token)
        event_id = await self.send(token, room_id, {"msgtype": "m.text", "body": "r"})
        await self.post(token, self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {})
        body = await self.ok("GET", V3 + "/initialSync", token=token)
        (receipt,) = [r for r in body["receipts"] if r["room_id"] == room_id]
        self.assertIn(alice, receipt["content"][event_id]["m.read"])
