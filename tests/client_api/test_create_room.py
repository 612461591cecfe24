"""POST /createRoom (spec: Client-Server API, create_room.yaml)."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


class CreateRoomTests(RoomsTestCase):
    async def state_map(self, token: str, room_id: str) -> dict:
        events = await self.ok("GET", self.room(room_id, "/state"), token=token)
        return {(e["type"], e["state_key"]): e for e in events}

    async def test_default_room_is_v12_private_chat(self):
        """Without options: a v12 room, private_chat preset, creator joined with profile."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        self.assertNotIn(":", room_id)  # v12 room IDs have no server part
        state = await self.state_map(tok, room_id)
        self.assertEqual(state[("m.room.create", "")]["content"]["room_version"], "12")
        self.assertEqual(state[("m.room.create", "")]["sender"], alice)
        self.assertEqual(state[("m.room.join_rules", "")]["content"]["join_rule"], "invite")
        self.assertEqual(
            state[("m.room.history_visibility", "")]["content"]["history_visibility"],
            "shared")
        self.assertEqual(state[("m.room.guest_access", "")]["content"]["guest_access"],
                         "can_join")
        member = state[("m.room.member", alice)]["content"]
        self.assertEqual(member, {"membership": "join", "displayname": "alice"})
        power = state[("m.room.power_levels", "")]["content"]
        self.assertEqual(power["users"], {})  # v12 creators are never listed
        self.assertGreater(power["events"]["m.room.tombstone"], power["state_default"])
        joined = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        self.assertEqual(joined["joined_rooms"], [room_id])

    async def test_v10_room_lists_the_creator(self):
        """room_version 10: room ID on our server, creator in create content and PLs."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(tok, room_version="10")
        self.assertTrue(room_id.endswith(":test.local"))
        state = await self.state_map(tok, room_id)
        self.assertEqual(state[("m.room.create", "")]["content"],
                         {"room_version": "10", "creator": alice})
        self.assertEqual(state[("m.room.power_levels", "")]["content"]["users"], {alice: 100})

    async def test_name_topic_and_alias(self):
        """name, topic (with its m.topic block) and room_alias_name become state; the
        alias resolves to the room and is the canonical alias."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(tok, name="Pub", topic="Beer",
                                         room_alias_name="pub")
        state = await self.state_map(tok, room_id)
        self.assertEqual(state[("m.room.name", "")]["content"], {"name": "Pub"})
        topic = state[("m.room.topic", "")]["content"]
        self.assertEqual(topic["topic"], "Beer")
        self.assertEqual(topic["m.topic"]["m.text"],
                         [{"body": "Beer", "mimetype": "text/plain"}])
        self.assertEqual(state[("m.room.canonical_alias", "")]["content"],
                         {"alias": "#pub:test.local"})
        resolved = await self.ok("GET", f"{V3}/directory/room/{q('#pub:test.local')}")
        self.assertEqual(resolved["room_id"], room_id)
        self.assertIn("test.local", resolved["servers"])

    async def test_alias_in_use(self):
        """A taken room_alias_name is 400 M_ROOM_IN_USE and creates no room."""
        _, tok = await self.register("alice")
        await self.create_room(tok, room_alias_name="taken")
        result = await self.post(tok, V3 + "/createRoom", {"room_alias_name": "taken"})
        self.assertError(result, 400, "M_ROOM_IN_USE")
        joined = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        self.assertEqual(len(joined["joined_rooms"]), 1)

    async def test_bad_alias_localpart(self):
        """A room_alias_name with ':' or whitespace is 400 M_INVALID_PARAM."""
        _, tok = await self.register("alice")
        for bad in ("a:b", "two words"):
            result = await self.post(tok, V3 + "/createRoom", {"room_alias_name": bad})
            self.assertError(result, 400, "M_INVALID_PARAM")

    async def test_unsupported_room_version(self):
        """An unknown room_version is 400 M_UNSUPPORTED_ROOM_VERSION, a number M_BAD_JSON
        (sytest "rejects attempts to create rooms with numeric/unknown versions")."""
        _, tok = await self.register("alice")
        for version in ("99", "0", "agjkyhdsghkjackljkj"):
            result = await self.post(tok, V3 + "/createRoom", {"room_version": version})
            self.assertError(result, 400, "M_UNSUPPORTED_ROOM_VERSION")
        result = await self.post(tok, V3 + "/createRoom", {"room_version": 1})
        self.assertError(result, 400, "M_BAD_JSON")

    async def test_room_versions_1_and_2(self):
        """Room versions 1 and 2 (sytest's "creates a room with the given version",
        "User can create and send/receive messages in a room with version 1"): the
        create event comes first in /sync and events name themselves ($x:server);
        messages, state, redactions and a second member work."""
        for version in ("1", "2"):
            await self._old_format_room(version)

    async def _old_format_room(self, version: str):
        alice, tok = await self.register("alice" + version)
        bob, bob_tok = await self.register("bob" + version)
        room_id = await self.create_room(tok, room_version=version, preset="public_chat")
        sync = await self.sync(tok)
        first = sync["rooms"]["join"][room_id]["timeline"]["events"][0]
        self.assertEqual(first["type"], "m.room.create")
        self.assertEqual(first["content"]["room_version"], version)
        self.assertTrue(first["event_id"].endswith(":test.local"))
        await self.join(bob_tok, room_id)
        sent = await self.send(bob_tok, room_id, {"msgtype": "m.text", "body": "hi"})
        self.assertRegex(sent, r"^\$[A-Za-z]{18}:test\.local$")
        await self.put_state(tok, room_id, "m.room.topic", {"topic": "v2"})
        await self.ok("PUT", self.room(room_id, f"/redact/{q(sent)}/r1"), {}, token=tok)
        status, resp = await self.messages(bob_tok, room_id, limit=3)
        self.assertEqual(status, 200, resp)
        self.assertEqual([e["type"] for e in resp["chunk"]],
                         ["m.room.redaction", "m.room.topic", "m.room.message"])
        self.assertEqual(resp["chunk"][2]["content"], {})
        event = await self.ok("GET", self.room(room_id, f"/event/{q(sent)}"), token=bob_tok)
        self.assertEqual(event["event_id"], sent)

    async def test_non_integer_power_levels(self):
        """A non-integer level in power_level_content_override or in an initial_state
        m.room.power_levels is 400 M_BAD_JSON in every room version (as Synapse), and
        no room is made; a valid initial_state m.room.power_levels is applied."""
        alice, tok = await self.register("alice")
        for version in ("2", "9", "10", "12"):
            for body in ({"power_level_content_override": {"users_default": "50"}},
                         {"power_level_content_override": {"events": {"m.room.name": 1.5}}},
                         {"initial_state": [{"type": "m.room.power_levels",
                                             "content": {"ban": "x"}}]}):
                result = await self.post(tok, V3 + "/createRoom",
                                         dict(body, room_version=version))
                self.assertError(result, 400, "M_BAD_JSON")
        joined = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        self.assertEqual(joined["joined_rooms"], [])
        room_id = await self.create_room(tok, room_version="10", initial_state=[
            {"type": "m.room.power_levels", "content": {"users": {alice: 100}, "ban": 7}}])
        power = (await self.state_map(tok, room_id))[("m.room.power_levels", "")]
        self.assertEqual(power["content"], {"users": {alice: 100}, "ban": 7})

    async def test_creation_content_cannot_set_version(self):
        """creation_content's room_version is ignored, its other keys kept (sytest)."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(
            tok, creation_content={"test": "azerty", "room_version": "test"})
        sync = await self.sync(tok)
        first = sync["rooms"]["join"][room_id]["timeline"]["events"][0]
        self.assertEqual(first["content"]["room_version"], "12")
        self.assertEqual(first["content"]["test"], "azerty")

    async def test_public_visibility_publishes_and_uses_public_chat(self):
        """visibility public: public_chat preset and published in the directory."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok, visibility="public")
        state = await self.state_map(tok, room_id)
        self.assertEqual(state[("m.room.join_rules", "")]["content"]["join_rule"], "public")
        self.assertEqual(state[("m.room.guest_access", "")]["content"]["guest_access"],
                         "forbidden")
        listed = await self.ok("GET", f"{V3}/directory/list/room/{q(room_id)}")
        self.assertEqual(listed, {"visibility": "public"})
        private = await self.create_room(tok)
        listed = await self.ok("GET", f"{V3}/directory/list/room/{q(private)}")
        self.assertEqual(listed, {"visibility": "private"})

    async def test_invite_with_is_direct(self):
        """invite + is_direct: invite events with is_direct and the invitee's name."""
        alice, tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok, invite=[bob], is_direct=True)
        state = await self.state_map(tok, room_id)
        invite = state[("m.room.member", bob)]
        self.assertEqual(invite["sender"], alice)
        self.assertEqual(invite["content"],
                         {"membership": "invite", "is_direct": True, "displayname": "bob"})
        await self.join(bob_tok, room_id)
        self.assertEqual(await self.c["room_service"].membership_of(room_id, bob), "join")

    async def test_trusted_private_chat_v12_makes_invitees_creators(self):
        """trusted_private_chat in v12: invitees join additional_creators (MSC4289)."""
        _, tok = await self.register("alice")
        bob, _ = await self.register("bob")
        room_id = await self.create_room(tok, preset="trusted_private_chat", invite=[bob])
        state = await self.state_map(tok, room_id)
        self.assertEqual(state[("m.room.create", "")]["content"]["additional_creators"], [bob])
        self.assertEqual(state[("m.room.power_levels", "")]["content"]["users"], {})

    async def test_initial_state_and_overrides(self):
        """initial_state beats the preset, name beats initial_state, and the power
        level override is merged; creation_content reaches the create event."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(
            tok, name="Real",
            initial_state=[
                {"type": "m.room.history_visibility",
                 "content": {"history_visibility": "world_readable"}},
                {"type": "m.room.name", "state_key": "", "content": {"name": "Ignored"}},
                {"type": "org.example.custom", "state_key": "k", "content": {"x": 1}}],
            power_level_content_override={"events_default": 20},
            creation_content={"m.federate": False, "type": "m.space"})
        state = await self.state_map(tok, room_id)
        self.assertEqual(
            state[("m.room.history_visibility", "")]["content"]["history_visibility"],
            "world_readable")
        self.assertEqual(state[("m.room.name", "")]["content"], {"name": "Real"})
        self.assertEqual(state[("org.example.custom", "k")]["content"], {"x": 1})
        power = state[("m.room.power_levels", "")]["content"]
        self.assertEqual(power["events_default"], 20)
        self.assertEqual(power["kick"], 50)
        create = state[("m.room.create", "")]["content"]
        self.assertIs(create["m.federate"], False)
        self.assertEqual(create["type"], "m.space")
        status, names = await self.messages(tok, room_id, dir="f", limit=50)
        self.assertEqual([e["content"]["name"] for e in names["chunk"]
                          if e["type"] == "m.room.name"], ["Real"])

    async def test_invalid_initial_state(self):
        """A v12 override listing the creator in users breaks the auth rules: 400
        M_INVALID_ROOM_STATE, and the user is in no new room."""
        alice, tok = await self.register("alice")
        result = await self.post(tok, V3 + "/createRoom",
                                 {"power_level_content_override": {"users": {alice: 100}}})
        self.assertError(result, 400, "M_INVALID_ROOM_STATE")
        joined = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        self.assertEqual(joined["joined_rooms"], [])

    async def test_bad_bodies(self):
        """Not JSON: M_NOT_JSON; not an object or wrong types: M_BAD_JSON."""
        _, tok = await self.register("alice")
        status, body = await self.request("POST", V3 + "/createRoom", raw=b"{nope",
                                          token=tok)
        self.assertEqual((status, body["errcode"]), (400, "M_NOT_JSON"))
        self.assertError(await self.post(tok, V3 + "/createRoom", [1]), 400, "M_BAD_JSON")
        for body in ({"name": 5}, {"invite": "@bob:test.local"}, {"is_direct": "yes"},
                     {"initial_state": [{"type": 1}]}, {"creation_content": []},
                     {"power_level_content_override": 3}):
            self.assertError(await self.post(tok, V3 + "/createRoom", body), 400,
                             "M_BAD_JSON")
        self.assertError(await self.post(tok, V3 + "/createRoom", {"visibility": "world"}),
                         400, "M_INVALID_PARAM")

    async def test_needs_an_access_token(self):
        """Without a token: 401 M_MISSING_TOKEN."""
        status, body = await self.request("POST", V3 + "/createRoom", {})
        self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))

    async def test_remote_invitee_is_refused(self):
        """Inviting a user of another server needs federation: refused up front."""
        _, tok = await self.register("alice")
        status, body = await self.post(tok, V3 + "/createRoom",
                                       {"invite": ["@bob:elsewhere.example"]})
        self.assertEqual(status, 400)
        self.assertIn("federation", body["error"])
        joined = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        self.assertEqual(joined["joined_rooms"], [])

    async def test_legacy_r0_prefix(self):
        """/_matrix/client/r0/createRoom works like v3."""
        _, tok = await self.register("alice")
        resp = await self.ok("POST", "/_matrix/client/r0/createRoom", {}, token=tok)
        self.assertTrue(resp["room_id"].startswith("!"))
