"""Room aliases and the published room directory (spec: directory.yaml,
list_public_rooms.yaml)."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{q(alias)}"


class AliasTests(RoomsTestCase):
    async def test_create_resolve_delete(self):
        """An alias maps to its room until deleted; then it is 404."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        await self.ok("PUT", alias_path("#cats:test.local"), {"room_id": room_id}, token=tok)
        resolved = await self.ok("GET", alias_path("#cats:test.local"))
        self.assertEqual(resolved, {"room_id": room_id, "servers": ["test.local"]})
        aliases = await self.ok("GET", self.room(room_id, "/aliases"), token=tok)
        self.assertEqual(aliases, {"aliases": ["#cats:test.local"]})
        await self.ok("DELETE", alias_path("#cats:test.local"), token=tok)
        self.assertError(await self.request("GET", alias_path("#cats:test.local")), 404,
                         "M_NOT_FOUND")
        self.assertError(await self.request("DELETE", alias_path("#cats:test.local"),
                                            token=tok), 404, "M_NOT_FOUND")

    async def test_errors(self):
        """Taken: 409 M_UNKNOWN; other server or malformed: 400 M_INVALID_PARAM;
        unknown room: 404; not a member: 403; missing room_id: 400."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok)
        await self.ok("PUT", alias_path("#a:test.local"), {"room_id": room_id}, token=tok)
        self.assertError(await self.request("PUT", alias_path("#a:test.local"),
                                            {"room_id": room_id}, token=tok), 409, "M_UNKNOWN")
        for bad in ("#a:elsewhere.example", "nohash:test.local", "#nocolon"):
            self.assertError(await self.request("PUT", alias_path(bad), {"room_id": room_id},
                                                token=tok), 400, "M_INVALID_PARAM")
        self.assertError(await self.request("PUT", alias_path("#b:test.local"),
                                            {"room_id": "!nope:test.local"}, token=tok),
                         404, "M_NOT_FOUND")
        self.assertError(await self.request("PUT", alias_path("#b:test.local"),
                                            {"room_id": room_id}, token=bob_tok),
                         403, "M_FORBIDDEN")
        self.assertError(await self.request("PUT", alias_path("#b:test.local"), {},
                                            token=tok), 400, "M_MISSING_PARAM")
        # another server's alias is asked over federation: a server we cannot reach
        # (loopback, refused by the SSRF filter) is 502
        self.assertError(await self.request("GET", alias_path("#x:127.0.0.1:1")), 502,
                         "M_UNKNOWN")
        self.assertError(await self.request("GET", alias_path("bad")), 400, "M_INVALID_PARAM")
        self.assertError(await self.request("GET", self.room(room_id, "/aliases"),
                                            token=bob_tok), 403, "M_FORBIDDEN")

    async def test_who_may_delete(self):
        """The alias's creator and room moderators may delete it, other members not;
        deleting drops it from the canonical alias event."""
        alice, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        _, carol_tok = await self.register("carol")
        room_id = await self.create_room(alice_tok, visibility="public",
                                         room_alias_name="main")
        await self.join(bob_tok, room_id)
        await self.join(carol_tok, room_id)
        await self.ok("PUT", alias_path("#bobs:test.local"), {"room_id": room_id},
                      token=bob_tok)
        self.assertError(await self.request("DELETE", alias_path("#bobs:test.local"),
                                            token=carol_tok), 403, "M_FORBIDDEN")
        self.assertError(await self.request("DELETE", alias_path("#main:test.local"),
                                            token=bob_tok), 403, "M_FORBIDDEN")
        await self.ok("DELETE", alias_path("#bobs:test.local"), token=bob_tok)
        await self.ok("DELETE", alias_path("#main:test.local"), token=alice_tok)
        content = await self.ok("GET", self.room(room_id, "/state/m.room.canonical_alias"),
                                token=alice_tok)
        self.assertNotIn("alias", content)


class DirectoryTests(RoomsTestCase):
    async def settle(self) -> None:
        await self.c["room_service"].stats.settled()

    async def test_visibility_get_and_put(self):
        """Room moderators publish and unpublish; others get 403; unknown rooms 404."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok, visibility="public")
        await self.join(bob_tok, room_id)
        path = f"{V3}/directory/list/room/{q(room_id)}"
        self.assertEqual(await self.ok("GET", path), {"visibility": "public"})
        self.assertError(await self.request("PUT", path, {"visibility": "private"},
                                            token=bob_tok), 403, "M_FORBIDDEN")
        await self.ok("PUT", path, {"visibility": "private"}, token=tok)
        self.assertEqual(await self.ok("GET", path), {"visibility": "private"})
        await self.ok("PUT", path, {}, token=tok)  # defaults to public
        self.assertEqual(await self.ok("GET", path), {"visibility": "public"})
        self.assertError(await self.request("PUT", path, {"visibility": "secret"},
                                            token=tok), 400, "M_INVALID_PARAM")
        missing = f"{V3}/directory/list/room/{q('!nope:test.local')}"
        self.assertError(await self.request("GET", missing), 404, "M_NOT_FOUND")
        self.assertError(await self.request("PUT", missing, {}, token=tok), 404,
                         "M_NOT_FOUND")

    async def test_public_rooms_summary_follows_state(self):
        """/publicRooms lists published rooms with their current name, topic, alias,
        avatar, member count and flags; changes to the state show up."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(
            tok, visibility="public", name="Cheese", topic="Tasty", room_alias_name="cheese",
            creation_content={"type": "m.space"},
            initial_state=[{"type": "m.room.history_visibility",
                            "content": {"history_visibility": "world_readable"}}])
        await self.create_room(tok, name="Hidden")  # not published
        await self.join(bob_tok, room_id)
        await self.put_state(tok, room_id, "m.room.avatar", {"url": "mxc://test.local/a"})
        await self.settle()
        page = await self.ok("GET", V3 + "/publicRooms")
        self.assertEqual(page["total_room_count_estimate"], 1)
        self.assertEqual(page["chunk"], [{
            "room_id": room_id, "name": "Cheese", "topic": "Tasty",
            "canonical_alias": "#cheese:test.local", "avatar_url": "mxc://test.local/a",
            "join_rule": "public", "guest_can_join": False, "world_readable": True,
            "room_type": "m.space", "num_joined_members": 2}])
        await self.put_state(tok, room_id, "m.room.name", {"name": "Brie"})
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        await self.settle()
        page = await self.ok("POST", V3 + "/publicRooms", {}, token=tok)
        self.assertEqual((page["chunk"][0]["name"], page["chunk"][0]["num_joined_members"]),
                         ("Brie", 1))

    async def test_search_and_paging(self):
        """generic_search_term and room_types filter; limit pages with next_batch and
        prev_batch, biggest rooms first."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        rooms = [await self.create_room(tok, visibility="public", name=f"Room {i}")
                 for i in range(3)]
        await self.create_room(tok, visibility="public", name="Other space",
                               creation_content={"type": "m.space"})
        await self.join(bob_tok, rooms[1])
        await self.settle()
        found = await self.ok("POST", V3 + "/publicRooms",
                              {"filter": {"generic_search_term": "room 2"}}, token=tok)
        self.assertEqual([r["room_id"] for r in found["chunk"]], [rooms[2]])
        spaces = await self.ok("POST", V3 + "/publicRooms",
                               {"filter": {"room_types": ["m.space"]}}, token=tok)
        self.assertEqual([r["name"] for r in spaces["chunk"]], ["Other space"])
        plain = await self.ok("POST", V3 + "/publicRooms",
                              {"filter": {"room_types": [None]}}, token=tok)
        self.assertEqual(len(plain["chunk"]), 3)
        first = await self.ok("GET", V3 + "/publicRooms?limit=2")
        self.assertEqual(first["chunk"][0]["room_id"], rooms[1])  # two members
        self.assertNotIn("prev_batch", first)
        second = await self.ok("GET", V3 + f"/publicRooms?limit=2&since={first['next_batch']}")
        self.assertEqual(len(second["chunk"]), 2)
        self.assertNotIn("next_batch", second)
        seen = {r["room_id"] for r in first["chunk"] + second["chunk"]}
        self.assertEqual(len(seen), 4)
        back = await self.ok("GET", V3 + f"/publicRooms?limit=2&since={second['prev_batch']}")
        self.assertEqual(back["chunk"], first["chunk"])

    async def test_public_rooms_errors(self):
        """A bad since token is 400 M_INVALID_PARAM; another server's directory needs
        federation (502 for a server we cannot reach); POST needs a token; a bad filter is
        M_BAD_JSON."""
        _, tok = await self.register("alice")
        self.assertError(await self.request("GET", V3 + "/publicRooms?since=zzz"), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.request("GET", V3 + "/publicRooms?server=127.0.0.1:1"),
                         502, "M_UNKNOWN")
        status, _ = await self.request("POST", V3 + "/publicRooms", {})
        self.assertEqual(status, 401)
        self.assertError(await self.request("POST", V3 + "/publicRooms",
                                            {"filter": {"room_types": [1]}}, token=tok),
                         400, "M_BAD_JSON")
        self.assertError(await self.request("POST", V3 + "/publicRooms", {"limit": "x"},
                                            token=tok), 400, "M_BAD_JSON")
