"""POST /user_directory/search: who may be found, matching, limits and errors
(spec: Client-Server API, "User directory")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q

SEARCH = "/_matrix/client/v3/user_directory/search"


class UserDirectoryTests(ServerTestCase):
    async def search(self, token: str, term: str, **extra):
        status, body = await self.request("POST", SEARCH, {"search_term": term, **extra},
                                          token=token)
        self.assertEqual(status, 200, body)
        return body

    async def set_name(self, user_id: str, token: str, name: str) -> None:
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/profile/{q(user_id)}/displayname",
            {"displayname": name}, token=token)
        self.assertEqual(status, 200)

    async def test_shared_and_public_rooms(self):
        """Users sharing a room or in a public room are found; strangers are not."""
        alice, alice_token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        carol, carol_token = await self.register("carol")
        dave, dave_token = await self.register("dave")
        private = await self.create_room(alice_token, invite=[bob])
        status, _ = await self.request("POST", f"/_matrix/client/v3/join/{q(private)}", {},
                                       token=bob_token)
        self.assertEqual(status, 200)
        await self.create_room(carol_token, preset="public_chat")
        self.assertEqual([r["user_id"] for r in (await self.search(alice_token, "bob"))[
            "results"]], [bob])
        # carol is in a public room: anyone finds her
        self.assertEqual([r["user_id"] for r in (await self.search(dave_token, "carol"))[
            "results"]], [carol])
        # bob is only in alice's private room: dave cannot find him
        self.assertEqual((await self.search(dave_token, "bob"))["results"], [])
        # dave is in no room at all
        self.assertEqual((await self.search(alice_token, "dave"))["results"], [])
        self.assertEqual((await self.search(bob_token, "alice"))["results"][0]["user_id"],
                         alice)
        del dave

    async def test_matches_display_name_and_id_case_insensitively(self):
        """Display names and user IDs match in any case; results carry the profile."""
        alice, alice_token = await self.register("alice")
        await self.set_name(alice, alice_token, "Alice Cooper")
        await self.request("PUT", f"/_matrix/client/v3/profile/{q(alice)}/avatar_url",
                           {"avatar_url": "mxc://test.local/a"}, token=alice_token)
        await self.create_room(alice_token, preset="public_chat")
        _, eve_token = await self.register("eve")
        for term in ("COOPER", "alice coo", "@ALICE", "test.local"):
            body = await self.search(eve_token, term)
            self.assertEqual(body["results"], [{"user_id": alice,
                                                "display_name": "Alice Cooper",
                                                "avatar_url": "mxc://test.local/a"}], term)
            self.assertFalse(body["limited"])
        self.assertEqual((await self.search(eve_token, "cooperx"))["results"], [])

    async def test_room_nickname_is_not_directory_name(self):
        """A per-room display name does not replace the global one in the directory."""
        alice, alice_token = await self.register("alice")
        await self.set_name(alice, alice_token, "Alice Cooper")
        room = await self.create_room(alice_token, preset="public_chat")
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.member/{q(alice)}",
            {"membership": "join", "displayname": "Freddy"}, token=alice_token)
        self.assertEqual(status, 200)
        _, eve_token = await self.register("eve")
        self.assertEqual((await self.search(eve_token, "Freddy"))["results"], [])
        body = await self.search(eve_token, "Cooper")
        self.assertEqual(body["results"][0]["display_name"], "Alice Cooper")

    async def test_limit(self):
        """``limit`` bounds the results and ``limited`` says more exist."""
        owner, owner_token = await self.register("owner")
        room = await self.create_room(owner_token, preset="public_chat")
        for i in range(4):
            _, token = await self.register(f"member{i}")
            await self.request("POST", f"/_matrix/client/v3/join/{q(room)}", {}, token=token)
        body = await self.search(owner_token, "member", limit=2)
        self.assertEqual(len(body["results"]), 2)
        self.assertTrue(body["limited"])
        body = await self.search(owner_token, "member")
        self.assertEqual(len(body["results"]), 4)
        self.assertFalse(body["limited"])

    async def test_bad_requests(self):
        """Missing/mistyped fields are 400; no token is 401."""
        _, token = await self.register("alice")
        for body, errcode in (({}, "M_MISSING_PARAM"), ({"search_term": 3}, "M_BAD_JSON"),
                              ({"search_term": "a", "limit": "5"}, "M_BAD_JSON"),
                              ({"search_term": "a" * 600}, "M_INVALID_PARAM")):
            status, resp = await self.request("POST", SEARCH, body, token=token)
            self.assertEqual((status, resp["errcode"]), (400, errcode), body)
        status, resp = await self.request("POST", SEARCH, {"search_term": "a"})
        self.assertEqual((status, resp["errcode"]), (401, "M_MISSING_TOKEN"))
