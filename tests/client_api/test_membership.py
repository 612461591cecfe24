"""Room membership endpoints (spec: joining.yaml, inviting.yaml, leaving.yaml,
kicking.yaml, banning.yaml, knocking.yaml, list_joined_rooms.yaml)."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


class MembershipTests(RoomsTestCase):
    async def member(self, token: str, room_id: str, user_id: str) -> dict:
        status, content = await self.get_state(token, room_id, "m.room.member", user_id)
        self.assertEqual(status, 200, content)
        return content

    async def test_join_public_room_by_id_and_alias(self):
        """A public room can be joined by ID and by alias; /joined_rooms lists it and
        the join carries the joiner's display name and the reason."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public",
                                         room_alias_name="lobby")
        resp = await self.ok("POST", f"{V3}/join/{q('#lobby:test.local')}",
                             {"reason": "hello"}, token=bob_tok)
        self.assertEqual(resp, {"room_id": room_id})
        self.assertEqual(await self.member(alice_tok, room_id, bob),
                         {"membership": "join", "displayname": "bob", "reason": "hello"})
        other = await self.create_room(alice_tok, visibility="public")
        resp = await self.ok("POST", f"{V3}/join/{q(other)}?server_name=test.local", {},
                             token=bob_tok)
        self.assertEqual(resp, {"room_id": other})
        joined = await self.ok("GET", V3 + "/joined_rooms", token=bob_tok)
        self.assertEqual(sorted(joined["joined_rooms"]), sorted([room_id, other]))

    async def test_join_with_custom_content(self):
        """sytest "POST /join/:room_id (and :room_alias) can join a room with custom
        content": the body's other keys land in the member event, a displayname in
        it beats the profile's, and a claimed join authoriser is not taken."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public",
                                         room_alias_name="club")
        for target in (room_id, "#club:test.local"):
            resp = await self.ok("POST", f"{V3}/join/{q(target)}", {"foo": "bar"},
                                 token=bob_tok)
            self.assertEqual(resp, {"room_id": room_id})
            self.assertEqual(await self.member(alice_tok, room_id, bob),
                             {"membership": "join", "displayname": "bob", "foo": "bar"})
            await self.leave(bob_tok, room_id)
        await self.ok("POST", self.room(room_id, "/join"),
                      {"displayname": "Bobby", "join_authorised_via_users_server": alice,
                       "membership": "leave", "reason": "hi"}, token=bob_tok)
        self.assertEqual(await self.member(alice_tok, room_id, bob),
                         {"membership": "join", "displayname": "Bobby", "reason": "hi"})

    async def test_joining_twice_changes_nothing(self):
        """A second join with the same profile answers 200 with no new event."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        first = await self.ok("GET", self.room(room_id, f"/state/m.room.member/{q(bob)}")
                              + "?format=event", token=bob_tok)
        await self.join(bob_tok, room_id)
        second = await self.ok("GET", self.room(room_id, f"/state/m.room.member/{q(bob)}")
                               + "?format=event", token=bob_tok)
        self.assertEqual(first["event_id"], second["event_id"])

    async def test_invite_only_room(self):
        """Joining an invite-only room needs an invite (403 M_FORBIDDEN before)."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok)
        self.assertError(await self.post(bob_tok, self.room(room_id, "/join")), 403,
                         "M_FORBIDDEN")
        await self.invite(alice_tok, room_id, bob)
        content = await self.member(alice_tok, room_id, bob)
        self.assertEqual(content["membership"], "invite")
        self.assertEqual(content["displayname"], "bob")
        # what /sync shows the invitee (invite_state): required create event, inviter
        stripped = await self.c["room_service"].stripped_state(room_id, members=[alice])
        self.assertEqual({(e["type"], e["state_key"]) for e in stripped},
                         {("m.room.create", ""), ("m.room.join_rules", ""),
                          ("m.room.member", alice)})
        self.assertEqual(set(stripped[0]), {"type", "state_key", "sender", "content"})
        await self.join(bob_tok, room_id)
        self.assertEqual((await self.member(bob_tok, room_id, bob))["membership"], "join")

    async def test_unknown_rooms_and_aliases(self):
        """Unknown room or alias: 404 M_NOT_FOUND; a remote one whose server cannot be
        reached over federation is 502 (as Synapse); a malformed room ID is 400
        M_INVALID_PARAM."""
        _, tok = await self.register("alice")
        self.assertError(await self.post(tok, self.room("!nope:test.local", "/join")),
                         404, "M_NOT_FOUND")
        self.assertError(await self.post(tok, f"{V3}/join/{q('#nope:test.local')}"),
                         404, "M_NOT_FOUND")
        status, body = await self.post(tok, f"{V3}/join/{q('#room:elsewhere.example')}")
        self.assertEqual((status, body["errcode"]), (502, "M_UNKNOWN"))
        self.assertIn("federation", body["error"])
        status, body = await self.post(tok, f"{V3}/join/{q('!abc:elsewhere.example')}")
        self.assertEqual((status, body["errcode"]), (502, "M_UNKNOWN"))
        self.assertIn("federation", body["error"])
        self.assertError(await self.post(tok, self.room("not-a-room", "/join")), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.post(tok, self.room("!nope:test.local", "/leave")),
                         404, "M_NOT_FOUND")

    async def test_invite_rules(self):
        """Inviting a member is 403; re-inviting an invitee is 200 without a new
        event; non-members cannot invite; user_id is required."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        carol, carol_tok = await self.register("carol")
        room_id = await self.create_room(alice_tok)
        await self.invite(alice_tok, room_id, bob)
        await self.join(bob_tok, room_id)
        self.assertError(await self.post(alice_tok, self.room(room_id, "/invite"),
                                         {"user_id": bob}), 403, "M_FORBIDDEN")
        await self.invite(alice_tok, room_id, carol)
        before = await self.ok("GET", self.room(room_id, "/state"), token=alice_tok)
        await self.invite(alice_tok, room_id, carol)
        after = await self.ok("GET", self.room(room_id, "/state"), token=alice_tok)
        self.assertEqual(sorted(e["event_id"] for e in before),
                         sorted(e["event_id"] for e in after))
        dave, _ = await self.register("dave")
        self.assertError(await self.post(carol_tok, self.room(room_id, "/invite"),
                                         {"user_id": dave}), 403, "M_FORBIDDEN")
        self.assertError(await self.post(alice_tok, self.room(room_id, "/invite"), {}),
                         400, "M_MISSING_PARAM")
        self.assertError(await self.post(alice_tok, self.room(room_id, "/invite"),
                                         {"user_id": "bob"}), 400, "M_INVALID_PARAM")

    async def test_leave_and_reject(self):
        """Leaving works, rejecting an invite is a leave, and leaving a room one is
        not in is 403 M_FORBIDDEN."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok)
        self.assertError(await self.post(bob_tok, self.room(room_id, "/leave")), 403,
                         "M_FORBIDDEN")
        await self.invite(alice_tok, room_id, bob)
        await self.ok("POST", self.room(room_id, "/leave"), {"reason": "no thanks"},
                      token=bob_tok)
        content = await self.member(alice_tok, room_id, bob)
        self.assertEqual(content, {"membership": "leave", "reason": "no thanks"})
        await self.ok("POST", self.room(room_id, "/leave"), None, token=alice_tok)
        joined = await self.ok("GET", V3 + "/joined_rooms", token=alice_tok)
        self.assertEqual(joined["joined_rooms"], [])

    async def test_forget(self):
        """Forgetting needs leaving first (400 M_UNKNOWN); afterwards the history is
        no longer readable."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        await self.send(alice_tok, room_id, {"msgtype": "m.text", "body": "hi"})
        self.assertError(await self.post(bob_tok, self.room(room_id, "/forget")), 400,
                         "M_UNKNOWN")
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        status, _ = await self.messages(bob_tok, room_id)
        self.assertEqual(status, 200)
        await self.ok("POST", self.room(room_id, "/forget"), {}, token=bob_tok)
        self.assertError(await self.messages(bob_tok, room_id), 403, "M_FORBIDDEN")
        self.assertError(await self.post(bob_tok, self.room("!nope:test.local", "/forget")),
                         404, "M_NOT_FOUND")

    async def test_kick(self):
        """Moderators kick with a reason; members without the kick level get 403;
        kicking someone not in the room is 403."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        carol, carol_tok = await self.register("carol")
        room_id = await self.create_room(alice_tok, visibility="public", room_version="10")
        await self.join(bob_tok, room_id)
        await self.join(carol_tok, room_id)
        self.assertError(await self.post(bob_tok, self.room(room_id, "/kick"),
                                         {"user_id": carol}), 403, "M_FORBIDDEN")
        await self.ok("POST", self.room(room_id, "/kick"),
                      {"user_id": carol, "reason": "rude"}, token=alice_tok)
        self.assertEqual(await self.member(alice_tok, room_id, carol),
                         {"membership": "leave", "reason": "rude"})
        self.assertError(await self.post(alice_tok, self.room(room_id, "/kick"),
                                         {"user_id": carol}), 403, "M_FORBIDDEN")
        self.assertError(await self.post(alice_tok, self.room(room_id, "/kick"), {}),
                         400, "M_MISSING_PARAM")

    async def test_ban_and_unban(self):
        """A banned user cannot join until unbanned; unbanning a user who is not
        banned is 403; only the ban level may ban."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        self.assertError(await self.post(bob_tok, self.room(room_id, "/ban"),
                                         {"user_id": alice}), 403, "M_FORBIDDEN")
        await self.ok("POST", self.room(room_id, "/ban"), {"user_id": bob, "reason": "spam"},
                      token=alice_tok)
        self.assertEqual(await self.member(alice_tok, room_id, bob),
                         {"membership": "ban", "reason": "spam"})
        self.assertError(await self.post(bob_tok, self.room(room_id, "/join")), 403,
                         "M_FORBIDDEN")
        self.assertError(await self.post(alice_tok, self.room(room_id, "/invite"),
                                         {"user_id": bob}), 403, "M_FORBIDDEN")
        await self.ok("POST", self.room(room_id, "/unban"), {"user_id": bob}, token=alice_tok)
        self.assertError(await self.post(alice_tok, self.room(room_id, "/unban"),
                                         {"user_id": bob}), 403, "M_FORBIDDEN")
        await self.join(bob_tok, room_id)

    async def test_knock(self):
        """Knocking works on knock rooms (v7+), is refused on public rooms and on room
        versions without knocking; the knock can be accepted with an invite."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, room_alias_name="door")
        await self.put_state(alice_tok, room_id, "m.room.join_rules", {"join_rule": "knock"})
        resp = await self.ok("POST", f"{V3}/knock/{q('#door:test.local')}",
                             {"reason": "let me in"}, token=bob_tok)
        self.assertEqual(resp, {"room_id": room_id})
        self.assertEqual(await self.member(alice_tok, room_id, bob),
                         {"membership": "knock", "reason": "let me in"})
        await self.invite(alice_tok, room_id, bob)
        await self.join(bob_tok, room_id)

        public = await self.create_room(alice_tok, visibility="public")
        self.assertError(await self.post(bob_tok, f"{V3}/knock/{q(public)}"), 403,
                         "M_FORBIDDEN")
        old = await self.create_room(alice_tok, room_version="6")
        self.assertError(await self.post(bob_tok, f"{V3}/knock/{q(old)}"), 403,
                         "M_FORBIDDEN")
        self.assertError(await self.post(bob_tok, f"{V3}/knock/{q('#none:test.local')}"),
                         404, "M_NOT_FOUND")

    async def test_restricted_room(self):
        """A restricted room (v8+) admits members of an allowed room, naming a local
        member who may invite as the authoriser; others get 403."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        space = await self.create_room(alice_tok, visibility="public")
        for version in ("10", "12"):
            room_id = await self.create_room(alice_tok, room_version=version, initial_state=[
                {"type": "m.room.join_rules",
                 "content": {"join_rule": "restricted",
                             "allow": [{"type": "m.room_membership", "room_id": space}]}}])
            self.assertError(await self.post(bob_tok, self.room(room_id, "/join")), 403,
                             "M_FORBIDDEN")
            await self.join(bob_tok, space)
            await self.join(bob_tok, room_id)
            content = await self.member(alice_tok, room_id, bob)
            self.assertEqual(content["join_authorised_via_users_server"], alice)
            await self.ok("POST", self.room(space, "/leave"), {}, token=bob_tok)

    async def test_membership_via_state_endpoint(self):
        """PUT /state/m.room.member/{user} follows the membership rules."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok)
        status, body = await self.request(
            "PUT", self.room(room_id, f"/state/m.room.member/{q(bob)}"),
            {"membership": "join"}, token=alice_tok)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        await self.put_state(alice_tok, room_id, "m.room.member", {"membership": "invite"},
                             bob)
        await self.put_state(bob_tok, room_id, "m.room.member",
                             {"membership": "join", "displayname": "Bobby"}, bob)
        self.assertEqual(await self.member(alice_tok, room_id, bob),
                         {"membership": "join", "displayname": "Bobby"})

    async def test_bad_bodies(self):
        """Membership bodies must be JSON objects with the right types."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        status, body = await self.request("POST", self.room(room_id, "/invite"),
                                          raw=b"nope", token=tok)
        self.assertEqual((status, body["errcode"]), (400, "M_NOT_JSON"))
        self.assertError(await self.post(tok, self.room(room_id, "/invite"),
                                         {"user_id": 5}), 400, "M_BAD_JSON")
        self.assertError(await self.post(tok, self.room(room_id, "/leave"),
                                         {"reason": 5}), 400, "M_BAD_JSON")


class GuestTests(RoomsTestCase):
    config_overrides = {"allow_guest_access": True}

    async def guest(self) -> tuple[str, str]:
        resp = await self.ok("POST", V3 + "/register?kind=guest", {})
        return resp["user_id"], resp["access_token"]

    async def test_guests_join_only_can_join_rooms(self):
        """Guests may join rooms with guest_access can_join (else 403), and are made
        to leave when guest access is turned off."""
        _, tok = await self.register("alice")
        guest, guest_tok = await self.guest()
        closed = await self.create_room(tok, visibility="public")  # forbidden for guests
        self.assertError(await self.post(guest_tok, self.room(closed, "/join")), 403,
                         "M_GUEST_ACCESS_FORBIDDEN")
        room_id = await self.create_room(
            tok, visibility="public",
            initial_state=[{"type": "m.room.guest_access",
                            "content": {"guest_access": "can_join"}}])
        await self.join(guest_tok, room_id)
        await self.put_state(tok, room_id, "m.room.guest_access",
                             {"guest_access": "forbidden"})
        service = self.c["room_service"]
        for _ in range(50):
            if await service.membership_of(room_id, guest) == "leave":
                break
            await self.ok("GET", V3 + "/joined_rooms", token=tok)  # let the reactor run
        self.assertEqual(await service.membership_of(room_id, guest), "leave")


class JoinRateLimitTests(RoomsTestCase):
    config_overrides = {"rc_joins": {"local": {"per_second": 0.0001, "burst_count": 2}}}

    async def test_joins_are_rate_limited(self):
        """rc_joins.local: past the burst, joins are 429 M_LIMIT_EXCEEDED."""
        _, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        rooms = [await self.create_room(alice_tok, visibility="public") for _ in range(3)]
        await self.join(bob_tok, rooms[0])
        await self.join(bob_tok, rooms[1])
        status, body = await self.post(bob_tok, self.room(rooms[2], "/join"))
        self.assertEqual((status, body["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(body["retry_after_ms"], 0)
