"""Room state endpoints (spec: room_state.yaml; rooms.yaml ``/state``)."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


class StateTests(RoomsTestCase):
    async def test_put_and_get(self):
        """PUT returns an event ID; GET returns the content, or the whole event with
        format=event; the empty state key works with and without the slash."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        event_id = await self.put_state(tok, room_id, "m.room.name", {"name": "One"})
        self.assertTrue(event_id.startswith("$"))
        for suffix in ("/state/m.room.name", "/state/m.room.name/"):
            content = await self.ok("GET", self.room(room_id, suffix), token=tok)
            self.assertEqual(content, {"name": "One"})
        event = await self.ok("GET", self.room(room_id, "/state/m.room.name/?format=event"),
                              token=tok)
        self.assertEqual((event["event_id"], event["sender"], event["state_key"],
                          event["type"]), (event_id, alice, "", "m.room.name"))
        resp = await self.ok("PUT", self.room(room_id, "/state/m.room.topic"),
                             {"topic": "t"}, token=tok)
        self.assertTrue(resp["event_id"].startswith("$"))
        keyed = await self.put_state(tok, room_id, "org.example.x", {"v": 1}, "some/key")
        content = await self.ok("GET", self.room(room_id,
                                                 f"/state/org.example.x/{q('some/key')}"),
                                token=tok)
        self.assertEqual(content, {"v": 1})
        self.assertNotEqual(keyed, event_id)
        self.assertError(await self.request(
            "GET", self.room(room_id, "/state/m.room.name?format=xml"), token=tok),
            400, "M_INVALID_PARAM")

    async def test_identical_content_returns_the_existing_event(self):
        """Setting the same content again answers with the current event's ID; a
        change makes a new event whose unsigned.prev_content is the old content."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        first = await self.put_state(tok, room_id, "m.room.name", {"name": "Same"})
        self.assertEqual(await self.put_state(tok, room_id, "m.room.name", {"name": "Same"}),
                         first)
        second = await self.put_state(tok, room_id, "m.room.name", {"name": "New"})
        self.assertNotEqual(second, first)
        event = await self.ok("GET", self.room(room_id, f"/event/{q(second)}"), token=tok)
        self.assertEqual(event["unsigned"]["prev_content"], {"name": "Same"})
        self.assertEqual(event["unsigned"]["replaces_state"], first)

    async def test_missing_state_is_404(self):
        """No state with that type and key: 404 M_NOT_FOUND."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        self.assertError(await self.get_state(tok, room_id, "m.room.avatar"), 404,
                         "M_NOT_FOUND")
        self.assertError(await self.get_state(tok, room_id, "m.room.name", "x"), 404,
                         "M_NOT_FOUND")

    async def test_non_members_and_world_readable(self):
        """Non-members get 403 for /state unless the room is world-readable."""
        _, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, name="Secret")
        self.assertError(await self.request("GET", self.room(room_id, "/state"),
                                            token=bob_tok), 403, "M_FORBIDDEN")
        self.assertError(await self.get_state(bob_tok, room_id, "m.room.name"), 403,
                         "M_FORBIDDEN")
        await self.put_state(alice_tok, room_id, "m.room.history_visibility",
                             {"history_visibility": "world_readable"})
        self.assertEqual(await self.ok("GET", self.room(room_id, "/state/m.room.name"),
                                       token=bob_tok), {"name": "Secret"})
        self.assertError(await self.request("GET", self.room("!nope:test.local", "/state"),
                                            token=bob_tok), 404, "M_NOT_FOUND")

    async def test_state_as_it_was_when_leaving(self):
        """After leaving, a member reads the state as it was when they left."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public", name="Before")
        await self.join(bob_tok, room_id)
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        await self.put_state(alice_tok, room_id, "m.room.name", {"name": "After"})
        self.assertEqual(await self.ok("GET", self.room(room_id, "/state/m.room.name"),
                                       token=bob_tok), {"name": "Before"})
        state = await self.ok("GET", self.room(room_id, "/state"), token=bob_tok)
        by_key = {(e["type"], e["state_key"]): e for e in state}
        self.assertEqual(by_key[("m.room.name", "")]["content"], {"name": "Before"})
        self.assertEqual(by_key[("m.room.member", bob)]["content"]["membership"], "leave")

    async def test_create_event_cannot_be_sent(self):
        """m.room.create cannot be set through the state API (v10 and v12): 400
        M_INVALID_PARAM, as Synapse."""
        _, tok = await self.register("alice")
        for version in ("10", "12"):
            room_id = await self.create_room(tok, room_version=version)
            self.assertError(await self.request(
                "PUT", self.room(room_id, "/state/m.room.create"), {"room_version": "12"},
                token=tok), 400, "M_INVALID_PARAM")

    async def test_power_needed(self):
        """A member below the state level cannot set it (403); state keys naming
        another user are refused."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        self.assertError(await self.request("PUT", self.room(room_id, "/state/m.room.name"),
                                            {"name": "Mine"}, token=bob_tok), 403,
                         "M_FORBIDDEN")
        self.assertError(await self.request(
            "PUT", self.room(room_id, f"/state/org.example.x/{q(bob)}"), {},
            token=alice_tok), 403, "M_FORBIDDEN")
        await self.put_state(alice_tok, room_id, "org.example.x", {}, alice)

    async def test_non_integer_power_levels(self):
        """PUT m.room.power_levels with a string, float, boolean or too large level is
        400 M_BAD_JSON, also in rooms (v2, v9) whose auth rules accept strings; the
        levels stay as they were."""
        _, tok = await self.register("alice")
        for version in ("2", "9", "12"):
            room_id = await self.create_room(tok, room_version=version)
            power = (await self.get_state(tok, room_id, "m.room.power_levels"))[1]
            for bad in ({"kick": "50"}, {"events": {"m.room.name": "50"}},
                        {"kick": 2 ** 60}, {"kick": True}, {"users": []}):
                self.assertError(await self.request(
                    "PUT", self.room(room_id, "/state/m.room.power_levels/"),
                    {**power, **bad}, token=tok), 400, "M_BAD_JSON")
            self.assertEqual((await self.get_state(tok, room_id, "m.room.power_levels"))[1],
                             power)

    async def test_canonical_alias_must_point_here(self):
        """m.room.canonical_alias may only add well-formed aliases pointing to the
        room: M_BAD_ALIAS otherwise, M_INVALID_PARAM for a malformed one."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        other = await self.create_room(tok)
        await self.ok("PUT", f"{V3}/directory/room/{q('#here:test.local')}",
                      {"room_id": room_id}, token=tok)
        await self.ok("PUT", f"{V3}/directory/room/{q('#there:test.local')}",
                      {"room_id": other}, token=tok)
        await self.put_state(tok, room_id, "m.room.canonical_alias",
                             {"alias": "#here:test.local"})
        for content in ({"alias": "#there:test.local"},
                        {"alias": "#here:test.local", "alt_aliases": ["#missing:test.local"]}):
            self.assertError(await self.request(
                "PUT", self.room(room_id, "/state/m.room.canonical_alias"), content,
                token=tok), 400, "M_BAD_ALIAS")
        self.assertError(await self.request(
            "PUT", self.room(room_id, "/state/m.room.canonical_alias"), {"alias": "nope"},
            token=tok), 400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "PUT", self.room(room_id, "/state/m.room.canonical_alias"), {"alias": 3},
            token=tok), 400, "M_BAD_JSON")

    async def test_bad_bodies(self):
        """State bodies must be JSON objects."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        status, body = await self.request("PUT", self.room(room_id, "/state/m.room.name"),
                                          raw=b"[", token=tok)
        self.assertEqual((status, body["errcode"]), (400, "M_NOT_JSON"))
        self.assertError(await self.request("PUT", self.room(room_id, "/state/m.room.name"),
                                            "name", token=tok), 400, "M_BAD_JSON")
        status, body = await self.request("POST", self.room(room_id, "/state/m.room.name"),
                                          {}, token=tok)
        self.assertEqual(status, 405)
