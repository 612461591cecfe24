"""Profiles: reading, setting, permissions, limits, and propagation into rooms and the
user directory (spec: Client-Server API, "Profiles")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q

P = "/_matrix/client/v3/profile/"


class ProfileTests(ServerTestCase):
    config_overrides = {"allow_guest_access": True}

    async def test_set_and_get(self):
        """A user sets displayname and avatar_url; anyone reads them without a token."""
        alice, token = await self.register("alice")
        status, _ = await self.request("PUT", P + q(alice) + "/displayname",
                                       {"displayname": "Alice L"}, token=token)
        self.assertEqual(status, 200)
        status, _ = await self.request("PUT", P + q(alice) + "/avatar_url",
                                       {"avatar_url": "mxc://test.local/abc"}, token=token)
        self.assertEqual(status, 200)
        self.assertEqual(await self.request("GET", P + q(alice) + "/displayname"),
                         (200, {"displayname": "Alice L"}))
        self.assertEqual(await self.request("GET", P + q(alice) + "/avatar_url"),
                         (200, {"avatar_url": "mxc://test.local/abc"}))
        self.assertEqual(await self.request("GET", P + q(alice)),
                         (200, {"displayname": "Alice L", "avatar_url": "mxc://test.local/abc"}))
        status, body = await self.request("GET", "/_matrix/client/r0/profile/" + q(alice))
        self.assertEqual((status, body["displayname"]), (200, "Alice L"))

    async def test_clearing_and_unset_fields(self):
        """null or "" clears a field; an unset field is 404 and absent from the profile."""
        alice, token = await self.register("alice")
        await self.request("PUT", P + q(alice) + "/avatar_url",
                           {"avatar_url": "mxc://test.local/abc"}, token=token)
        status, _ = await self.request("PUT", P + q(alice) + "/avatar_url",
                                       {"avatar_url": None}, token=token)
        self.assertEqual(status, 200)
        status, body = await self.request("GET", P + q(alice) + "/avatar_url")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.request("GET", P + q(alice))
        self.assertEqual(status, 200)
        self.assertNotIn("avatar_url", body)
        status, _ = await self.request("DELETE", P + q(alice) + "/displayname", token=token)
        self.assertEqual(status, 200)
        status, body = await self.request("GET", P + q(alice) + "/displayname")
        self.assertEqual(status, 404)

    async def test_only_self_may_set(self):
        """Setting someone else's profile is 403 M_FORBIDDEN; no token is 401."""
        alice, _ = await self.register("alice")
        _, bob_token = await self.register("bob")
        status, body = await self.request("PUT", P + q(alice) + "/displayname",
                                          {"displayname": "pwned"}, token=bob_token)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.request("PUT", P + q(alice) + "/displayname",
                                          {"displayname": "pwned"})
        self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))
        status, body = await self.request("GET", P + q(alice) + "/displayname")
        self.assertEqual(body.get("displayname"), "alice")

    async def test_unknown_user(self):
        """Unknown local and remote users are 404 M_NOT_FOUND; a malformed ID is 400."""
        for user in ("@nobody:test.local", "@someone:elsewhere.example"):
            status, body = await self.request("GET", P + q(user))
            self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"), user)
            status, body = await self.request("GET", P + q(user) + "/displayname")
            self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"), user)
        status, body = await self.request("GET", P + "not-a-user-id")
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_bad_values(self):
        """Too long, non-string and missing values are refused with 400."""
        alice, token = await self.register("alice")
        cases = [
            ("displayname", {"displayname": "x" * 257}, "M_INVALID_PARAM"),
            ("displayname", {"displayname": 42}, "M_BAD_JSON"),
            ("displayname", {"displayname": "bad\nname"}, "M_INVALID_PARAM"),
            ("avatar_url", {"avatar_url": "mxc://x/" + "a" * 1000}, "M_INVALID_PARAM"),
            ("avatar_url", {"displayname": "wrong key"}, "M_MISSING_PARAM"),
            ("m.tz", {"m.tz": "Europe/London"}, "M_INVALID_PARAM"),
        ]
        for field, body, errcode in cases:
            status, resp = await self.request("PUT", P + q(alice) + "/" + field, body,
                                              token=token)
            self.assertEqual((status, resp["errcode"]), (400, errcode), body)
        status, resp = await self.request("GET", P + q(alice) + "/displayname")
        self.assertEqual(resp, {"displayname": "alice"})
        # an avatar_url need not be mxc:// (as in Synapse)
        status, resp = await self.request("PUT", P + q(alice) + "/avatar_url",
                                          {"avatar_url": "https://example.com/a.png"},
                                          token=token)
        self.assertEqual(status, 200, resp)

    async def test_propagates_to_joined_rooms(self):
        """A new displayname/avatar becomes a new member event in every joined room."""
        alice, token = await self.register("alice")
        room1 = await self.create_room(token)
        room2 = await self.create_room(token, preset="public_chat")
        await self.request("PUT", P + q(alice) + "/displayname", {"displayname": "Queen"},
                           token=token)
        await self.request("PUT", P + q(alice) + "/avatar_url",
                           {"avatar_url": "mxc://test.local/crown"}, token=token)
        for room_id in (room1, room2):
            actor = await self.c["rooms"].get(room_id)
            member = (await actor.current_state([("m.room.member", alice)]))[
                ("m.room.member", alice)]
            self.assertEqual(member.content.get("membership"), "join")
            self.assertEqual(member.content.get("displayname"), "Queen")
            self.assertEqual(member.content.get("avatar_url"), "mxc://test.local/crown")

    async def test_does_not_touch_rooms_left(self):
        """Rooms the user left get no new member event."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token)
        status, _ = await self.request(
            "POST", f"/_matrix/client/v3/rooms/{q(room_id)}/leave", {}, token=token)
        self.assertEqual(status, 200)
        actor = await self.c["rooms"].get(room_id)
        before = await actor.last_seq()
        await self.request("PUT", P + q(alice) + "/displayname", {"displayname": "Gone"},
                           token=token)
        self.assertEqual(await actor.last_seq(), before)

    async def test_updates_user_directory(self):
        """The user directory finds a user by their new display name."""
        alice, token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        await self.create_room(token, preset="public_chat")
        await self.request("PUT", P + q(alice) + "/displayname",
                           {"displayname": "Zebediah"}, token=token)
        status, body = await self.request("POST", "/_matrix/client/v3/user_directory/search",
                                          {"search_term": "zebed"}, token=bob_token)
        self.assertEqual(status, 200)
        self.assertEqual(body["results"], [{"user_id": alice, "display_name": "Zebediah"}])

    async def test_guest_may_set_displayname_only(self):
        """Guests may change their display name but not their avatar (spec: Guest Access)."""
        status, body = await self.request("POST", "/_matrix/client/v3/register?kind=guest",
                                          {})
        self.assertEqual(status, 200, body)
        guest, token = body["user_id"], body["access_token"]
        status, _ = await self.request("PUT", P + q(guest) + "/displayname",
                                       {"displayname": "Visitor"}, token=token)
        self.assertEqual(status, 200)
        status, resp = await self.request("PUT", P + q(guest) + "/avatar_url",
                                          {"avatar_url": "mxc://test.local/x"}, token=token)
        self.assertEqual((status, resp["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))
