"""Global and per-room account data and room tags over HTTP, and in /sync."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, V3, q


class AccountDataTests(SyncTestCase):
    async def test_global_account_data(self):
        """PUT then GET returns the content; /sync lists it once, then only changes."""
        user_id, token = await self.register("alice")
        path = f"{V3}/user/{q(user_id)}/account_data/org.example.settings"
        self.assertError(await self.request("GET", path, token=token), 404, "M_NOT_FOUND")
        await self.ok("PUT", path, {"theme": "dark"}, token=token)
        self.assertEqual(await self.ok("GET", path, token=token), {"theme": "dark"})
        body = await self.sync_ok(token)
        self.assertIn({"type": "org.example.settings", "content": {"theme": "dark"}},
                      body["account_data"]["events"])
        later = await self.sync_ok(token, since=body["next_batch"])
        self.assertEqual(later["account_data"]["events"], [])
        await self.ok("PUT", path, {"theme": "light"}, token=token)
        later = await self.sync_ok(token, since=later["next_batch"])
        self.assertEqual(later["account_data"]["events"],
                         [{"type": "org.example.settings", "content": {"theme": "light"}}])

    async def test_room_account_data(self):
        """Room account data is listed under the room, separate from global data."""
        user_id, token = await self.register("alice")
        room_id = await self.create_room(token)
        path = f"{V3}/user/{q(user_id)}/rooms/{q(room_id)}/account_data/org.example.r"
        await self.ok("PUT", path, {"pinned": True}, token=token)
        self.assertEqual(await self.ok("GET", path, token=token), {"pinned": True})
        self.assertError(await self.request(
            "GET", f"{V3}/user/{q(user_id)}/account_data/org.example.r", token=token),
            404, "M_NOT_FOUND")
        body = await self.sync_ok(token)
        self.assertIn({"type": "org.example.r", "content": {"pinned": True}},
                      body["rooms"]["join"][room_id]["account_data"]["events"])

    async def test_account_data_errors(self):
        """Other users' data is 403, server-managed types 405, bad room IDs and
        non-object bodies 400."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        self.assertError(await self.request(
            "PUT", f"{V3}/user/{q(bob_id)}/account_data/x", {}, token=alice),
            403, "M_FORBIDDEN")
        self.assertError(await self.request(
            "GET", f"{V3}/user/{q(bob_id)}/account_data/x", token=alice), 403, "M_FORBIDDEN")
        self.assertError(await self.request(
            "PUT", f"{V3}/user/{q(alice_id)}/account_data/m.push_rules", {}, token=alice),
            405, "M_BAD_JSON")
        self.assertError(await self.request(
            "PUT", f"{V3}/user/{q(alice_id)}/rooms/nope/account_data/x", {}, token=alice),
            400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "PUT", f"{V3}/user/{q(alice_id)}/account_data/x", [1], token=alice),
            400, "M_BAD_JSON")


class TagTests(SyncTestCase):
    async def test_tags(self):
        """Tags can be added, listed and removed, and come as m.tag in /sync."""
        user_id, token = await self.register("alice")
        room_id = await self.create_room(token)
        base = f"{V3}/user/{q(user_id)}/rooms/{q(room_id)}/tags"
        await self.ok("PUT", f"{base}/m.favourite", {"order": 0.25}, token=token)
        await self.ok("PUT", f"{base}/u.work", {}, token=token)
        self.assertEqual(await self.ok("GET", base, token=token),
                         {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}})
        body = await self.sync_ok(token)
        self.assertIn({"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25},
                                                              "u.work": {}}}},
                      body["rooms"]["join"][room_id]["account_data"]["events"])
        await self.ok("DELETE", f"{base}/u.work", token=token)
        later = await self.sync_ok(token, since=body["next_batch"])
        self.assertEqual(later["rooms"]["join"][room_id]["account_data"]["events"],
                         [{"type": "m.tag", "content": {"tags": {"m.favourite":
                                                                 {"order": 0.25}}}}])
        self.assertEqual(await self.ok("GET", base, token=token),
                         {"tags": {"m.favourite": {"order": 0.25}}})

    async def test_tag_errors(self):
        """Overlong tag names and non-numeric orders are refused; others' tags 403."""
        user_id, token = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(token)
        base = f"{V3}/user/{q(user_id)}/rooms/{q(room_id)}/tags"
        self.assertError(await self.request("PUT", f"{base}/{'x' * 256}", {}, token=token),
                         400, "M_INVALID_PARAM")
        self.assertError(await self.request("PUT", f"{base}/u.a", {"order": "1"},
                                            token=token), 400, "M_BAD_JSON")
        self.assertError(await self.request("GET", base, token=bob), 403, "M_FORBIDDEN")
